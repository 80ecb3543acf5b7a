#!/usr/bin/env python3
"""Issuer side of Quarry's OIDC tests (crates/trust/tests/oidc.rs), built on PyJWT and cryptography.

  oidc_issuer.py check            exit 0 when PyJWT and cryptography can be imported
  oidc_issuer.py keys DIR         create the test keys in DIR (PEM private keys)
  oidc_issuer.py sign DIR         read a JSON request on stdin, print {"jwks": ..., "tokens": {...}}
  oidc_issuer.py serve DIR        serve DIR/jwks.json and discovery documents on 127.0.0.1 (a free port,
                                  printed as the first line); stops when stdin closes, or after 300 s

Request of `sign`:
  {"jwks": [{"key": "rsa1", "alg": "RS256"}, ...],     keys to publish ("alg" null or absent: none published)
   "tokens": {"name": {"key": "rsa1", "alg": "RS256", "claims": {...}, "headers": {...}}, ...}}
A token with "alg": "none" is built unsigned; "alg": "HS256" with "secret": "public_pem" is signed by hand
with HMAC keyed by the key's public PEM (the algorithm confusion attack; PyJWT itself refuses to do that).
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import threading

KEYS = {
    "rsa1": "rsa",
    "rsa2": "rsa",
    "ec256": "p256",
    "ec256b": "p256",
    "ec384": "p384",
    "ed1": "ed25519",
}


def check():
    import jwt  # noqa: F401
    import cryptography  # noqa: F401
    from jwt.algorithms import RSAAlgorithm  # noqa: F401  (present only with cryptography)


def make_keys(directory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    os.makedirs(directory, exist_ok=True)
    for name, kind in KEYS.items():
        if kind == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "p256":
            key = ec.generate_private_key(ec.SECP256R1())
        elif kind == "p384":
            key = ec.generate_private_key(ec.SECP384R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with open(os.path.join(directory, name + ".pem"), "wb") as f:
            f.write(pem)


def load_key(directory, name):
    from cryptography.hazmat.primitives import serialization

    with open(os.path.join(directory, name + ".pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def public_jwk(directory, name, alg):
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    public = load_key(directory, name).public_key()
    kind = KEYS[name]
    if kind == "rsa":
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif kind in ("p256", "p384"):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    jwk["kid"] = name
    jwk["use"] = "sig"
    if alg:
        jwk["alg"] = alg
    else:
        jwk.pop("alg", None)
    return jwk


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_token(directory, spec):
    import jwt
    from cryptography.hazmat.primitives import serialization

    alg = spec["alg"]
    claims = spec.get("claims", {})
    headers = dict(spec.get("headers", {}))
    if alg == "none":
        header = {"alg": "none", "typ": "JWT"}
        header.update(headers)
        return "%s.%s." % (
            b64(json.dumps(header).encode()),
            b64(json.dumps(claims).encode()),
        )
    key = load_key(directory, spec["key"])
    if alg.startswith("HS"):
        secret = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": alg, "typ": "JWT"}
        header.update(headers)
        signing_input = "%s.%s" % (
            b64(json.dumps(header).encode()),
            b64(json.dumps(claims).encode()),
        )
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        mac = hmac.new(secret, signing_input.encode(), digest).digest()
        return signing_input + "." + b64(mac)
    if "kid" not in headers:
        headers["kid"] = spec["key"]
    elif headers["kid"] is None:
        del headers["kid"]
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def sign(directory):
    request = json.load(sys.stdin)
    jwks = {"keys": [public_jwk(directory, k["key"], k.get("alg")) for k in request.get("jwks", [])]}
    tokens = {name: sign_token(directory, spec) for name, spec in request.get("tokens", {}).items()}
    json.dump({"jwks": jwks, "tokens": tokens}, sys.stdout)


def serve(directory):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    counts = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                counts[self.path] = counts.get(self.path, 0) + 1
            base = "http://127.0.0.1:%d" % self.server.server_address[1]
            if self.path == "/.well-known/openid-configuration":
                body = json.dumps({"issuer": base, "jwks_uri": base + "/jwks.json"}).encode()
            elif self.path == "/wrong/.well-known/openid-configuration":
                # Metadata that names another issuer than the one it is served for.
                body = json.dumps({"issuer": "https://evil.example", "jwks_uri": base + "/jwks.json"}).encode()
            elif self.path == "/jwks.json":
                with open(os.path.join(directory, "jwks.json"), "rb") as f:
                    body = f.read()
            elif self.path == "/stats":
                with lock:
                    body = json.dumps(counts).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    deadline = threading.Timer(300, lambda: os._exit(0))
    deadline.daemon = True
    deadline.start()
    sys.stdin.read()  # returns when the test closes our stdin (or dies)
    server.shutdown()


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "check":
        check()
    elif command == "keys":
        make_keys(sys.argv[2])
    elif command == "sign":
        sign(sys.argv[2])
    elif command == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
