//! Trust end to end, with real clients: curl and openssl (Debian's) against `quarry server` over TLS
//! with mTLS; tokens and roles on every route; namespace isolation through queries, hunts and alerts;
//! the access audit as auditors see it.

mod common;

use common::{free_port, quarry, run_ok};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn token(data: &Path, role: &str, extra: &[&str]) -> String {
    let out = run_ok(
        quarry()
            .args(["token", "create", "--role", role, "--data-dir"])
            .arg(data)
            .args(extra),
    )
    .stdout;
    String::from_utf8(out).unwrap().trim().to_string()
}

/// A TLS server with mTLS and the files it was made from.
struct TlsServer {
    child: Child,
    port: u16,
    certs: PathBuf,
}

impl TlsServer {
    fn start(data: &Path, certs: &Path) -> TlsServer {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(["server", "--log", "warn", "--commit-interval", "200ms"])
            .arg("--data-dir")
            .arg(data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tls-cert")
            .arg(certs.join("server.pem"))
            .arg("--tls-key")
            .arg(certs.join("server-key.pem"))
            .arg("--client-ca")
            .arg(certs.join("ca.pem"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let s = TlsServer {
            child,
            port,
            certs: certs.to_path_buf(),
        };
        let started = Instant::now();
        while s.curl(&["/healthz"], &[]).0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(60), "no TLS server");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// curl with Quarry's CA; `args[0]` is the path, the rest curl options. Returns the status (0 when
    /// there was no HTTP answer), the body and curl's exit code.
    fn curl(&self, args: &[&str], body: &[u8]) -> (u16, String, i32) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
            .arg(self.certs.join("ca.pem"))
            .arg(self.url(args[0]))
            .args(&args[1..]);
        if !body.is_empty() {
            cmd.args(["--data-binary", "@-"]);
        }
        let out = common::run_with_input(cmd.stderr(Stdio::null()), body);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            body.to_string(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// A request with a bearer token.
    fn call(&self, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, String) {
        let auth = format!("Authorization: Bearer {token}");
        let (code, text, _) = self.curl(&[path, "-X", method, "-H", &auth], body);
        (code, text)
    }

    fn query(&self, token: &str, q: &str) -> Vec<serde_json::Value> {
        let body = serde_json::json!({ "query": q }).to_string();
        let (code, text) = self.call("POST", "/api/v1/query", token, body.as_bytes());
        assert_eq!(code, 200, "{q}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["rows"].as_array().unwrap().clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(args: &[&str], stdin: &[u8]) -> Output {
    common::run_with_input(
        Command::new("openssl").args(args).stderr(Stdio::piped()),
        stdin,
    )
}

/// An agent certificate signed by `certs`' CA that expired in 2020, made with `openssl ca`.
fn expired_cert(certs: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let db = dir.join("ca-db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("index.txt"), "").unwrap();
    std::fs::write(db.join("serial"), "1000\n").unwrap();
    let cnf = dir.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = c\n[c]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\nserial = {db}/serial\n\
             default_md = sha256\npolicy = p\nx509_extensions = ext\n[p]\ncommonName = supplied\n\
             [ext]\nextendedKeyUsage = clientAuth\nsubjectAltName = DNS:node-old\n",
            db = db.display()
        ),
    )
    .unwrap();
    let (key, csr, pem) = (
        dir.join("old-key.pem"),
        dir.join("old.csr"),
        dir.join("old.pem"),
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &s(&key),
            "-out",
            &s(&csr),
            "-subj",
            "/CN=node-old",
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let out = openssl(
        &[
            "ca",
            "-batch",
            "-notext",
            "-config",
            &s(&cnf),
            "-cert",
            &s(&certs.join("ca.pem")),
            "-keyfile",
            &s(&certs.join("ca-key.pem")),
            "-in",
            &s(&csr),
            "-out",
            &s(&pem),
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    (pem, key)
}

fn audit_event(ns: &str, pod: &str, minute: u32) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": format!("{ns}-{pod}-{minute}"), "stage": "ResponseStarted",
        "requestURI": format!("/api/v1/namespaces/{ns}/pods/{pod}/exec?command=sh"),
        "verb": "create", "user": {"username": format!("dev-{ns}")}, "sourceIPs": ["10.0.0.5"],
        "objectRef": {"resource": "pods", "namespace": ns, "name": pod, "subresource": "exec"},
        "responseStatus": {"code": 101},
        "requestReceivedTimestamp": format!("2026-11-20T10:{minute:02}:00.000000Z"),
        "stageTimestamp": format!("2026-11-20T10:{minute:02}:00.100000Z"),
    })
    .to_string()
}

#[test]
fn tls_tokens_roles_and_namespace_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, other_ca, data) = (
        tmp.path().join("certs"),
        tmp.path().join("other"),
        tmp.path().join("data"),
    );
    for (out, node) in [(&certs, "node-a"), (&other_ca, "node-x")] {
        run_ok(
            quarry()
                .args(["certs", "init", "--node", node, "--out"])
                .arg(out),
        );
    }
    let admin = token(&data, "admin", &[]);
    let analyst_a = token(&data, "analyst", &["--namespaces", "team-a"]);
    let analyst_b = token(&data, "analyst", &["--namespaces", "team-b", "--cluster"]);
    let auditor = token(&data, "auditor", &[]);
    let ingest = token(&data, "ingest", &[]);
    let s = TlsServer::start(&data, &certs);

    // Plain HTTP without --insecure is refused at start.
    let out = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["server", "--data-dir"])
        .arg(tmp.path().join("other-data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure"));

    // --- TLS with real clients.
    // Plain text to the TLS port: a 400 that says to use https.
    let plain = Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{}/healthz", s.port)])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("speaks TLS"),
        "{plain:?}"
    );
    // The wrong CA: curl refuses the server's certificate (exit 60), openssl reports the failed check.
    let wrong = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(other_ca.join("ca.pem"))
        .arg(s.url("/healthz"))
        .status()
        .unwrap();
    assert_eq!(wrong.code(), Some(60));
    let connect = format!("127.0.0.1:{}", s.port);
    let verified_with = |ca: &Path| {
        let ca = ca.to_str().unwrap();
        let args = [
            "s_client",
            "-connect",
            &connect,
            "-verify_return_error",
            "-CAfile",
            ca,
        ];
        openssl(&args, b"")
    };
    assert!(!verified_with(&other_ca.join("ca.pem")).status.success());
    // TLS 1.3 only by default: a TLS 1.2 client is turned away; 1.3 with the right CA verifies.
    let o = openssl(&["s_client", "-connect", &connect, "-tls1_2"], b"");
    assert!(!o.status.success(), "TLS 1.2 accepted");
    let o = verified_with(&certs.join("ca.pem"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("TLSv1.3") && text.contains("Verify return code: 0"),
        "{text}"
    );

    // --- Every route: 401 without credentials, 403 for a role outside it.
    let unknown = s.call("GET", "/api/v1/nothing", "", b"");
    assert_eq!(unknown.0, 401, "unknown routes also need credentials");
    let mut covered = vec!["/healthz".to_string()];
    for (method, path, outsider) in [
        ("POST", "/api/v1/ingest?kind=text", &analyst_a),
        ("POST", "/api/v1/ingest/streams", &auditor),
        ("POST", "/api/v1/commit", &analyst_a),
        ("POST", "/api/v1/query", &ingest),
        ("POST", "/api/v1/hunt", &auditor),
        ("GET", "/api/v1/stats", &ingest),
        ("GET", "/metrics", &ingest),
        ("GET", "/api/v1/alerts", &auditor),
        ("GET", "/api/v1/alerts/a-0", &ingest),
        ("POST", "/api/v1/alerts/a-0", &auditor),
    ] {
        let (code, text, _) = s.curl(&[path, "-X", method], b"{}");
        assert_eq!(code, 401, "{method} {path} without credentials: {text}");
        let (code, _) = s.call(method, path, "qry_000000000000_forged", b"{}");
        assert_eq!(code, 401, "{method} {path} with a forged token");
        let (code, text) = s.call(method, path, outsider, b"{}");
        assert_eq!(code, 403, "{method} {path} outside the role: {text}");
        let route = path.split('?').next().unwrap().replace("a-0", "{id}");
        covered.push(route);
    }
    assert_eq!(s.curl(&["/healthz"], &[]).0, 200, "health needs nothing");
    // The store's counters cover every namespace: not for an analyst limited to some.
    for path in ["/api/v1/stats", "/metrics"] {
        let (code, text) = s.call("GET", path, &analyst_a, b"");
        assert_eq!(code, 403, "{path}: {text}");
        assert!(
            text.contains("its counters cover every namespace"),
            "{text}"
        );
        assert_eq!(s.call("GET", path, &admin, b"").0, 200, "{path}");
    }
    for route in quarry_server::ROUTES {
        assert!(
            covered.iter().any(|c| c == route),
            "route {route} is not covered by this test"
        );
    }

    // --- Data in two namespaces and the cluster, sent by an agent certificate and a token.
    let agent = |args: &[&str], body: &[u8]| {
        let mut a = vec![args[0], "--cert"];
        let cert = certs.join("agent-node-a.pem");
        let key = certs.join("agent-node-a-key.pem");
        a.extend([cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
        a.extend(&args[1..]);
        s.curl(&a, body)
    };
    let (code, text, _) = agent(
        &[
            "/api/v1/ingest?kind=container&namespace=team-a&pod=web",
            "-X",
            "POST",
        ],
        b"a secret line of team a\nanother line of team a\n",
    );
    assert_eq!(code, 200, "{text}");
    let (code, text, _) = agent(
        &["/api/v1/ingest?kind=text&node=node-b", "-X", "POST"],
        b"pretending to be node b\n",
    );
    assert_eq!(
        code, 403,
        "a node certificate sends only its node's logs: {text}"
    );
    let (code, _) = s.call(
        "POST",
        "/api/v1/ingest?kind=container&namespace=team-b&pod=db",
        &ingest,
        b"a line of team b\n",
    );
    assert_eq!(code, 200);
    let (code, _) = s.call("POST", "/api/v1/ingest?kind=syslog", &ingest, b"<13>Nov 20 10:00:00 node-a sshd[1]: Accepted publickey for root from 10.1.1.1 port 2 ssh2\n");
    assert_eq!(code, 200);
    let audit: String = [
        audit_event("team-a", "web", 1),
        audit_event("team-b", "db", 2),
    ]
    .join("\n");
    let (code, text) = s.call(
        "POST",
        "/api/v1/ingest?kind=audit",
        &admin,
        audit.as_bytes(),
    );
    assert_eq!(code, 200, "{text}");
    let (code, text) = s.call(
        "POST",
        "/api/v1/ingest?kind=access",
        &admin,
        b"{\"actor\": \"nobody\"}\n",
    );
    assert_eq!(code, 403, "nobody forges the access audit: {text}");
    assert_eq!(s.call("POST", "/api/v1/commit", &ingest, b"").0, 200);

    // --- Namespace isolation: queries.
    let count = |tok: &str, q: &str| -> u64 {
        let rows = s.query(tok, &format!("{q} | stats count(*) as n"));
        rows.first().and_then(|r| r["n"].as_u64()).unwrap_or(0)
    };
    let all = count(&admin, "filter @source != \"access\"");
    assert_eq!(
        all, 6,
        "2 + 1 container lines, 1 syslog line, 2 audit events"
    );
    for (who, tok, q, want) in [
        (
            "team-a: its 2 lines and its audit event",
            &analyst_a,
            "filter ispresent(@message)",
            3,
        ),
        (
            "team-a, team-b's lines",
            &analyst_a,
            "filter kubernetes.namespace = \"team-b\"",
            0,
        ),
        (
            "team-a, team-b's audit",
            &analyst_a,
            "filter objectRef.namespace = \"team-b\"",
            0,
        ),
        (
            "team-a without cluster grant",
            &analyst_a,
            "filter @source = \"syslog\"",
            0,
        ),
        (
            "team-b with cluster grant",
            &analyst_b,
            "filter @source = \"syslog\"",
            1,
        ),
        (
            "team-b, team-a's lines",
            &analyst_b,
            "filter kubernetes.namespace = \"team-a\"",
            0,
        ),
        (
            "an analyst, the access audit",
            &analyst_a,
            "filter @source = \"access\"",
            0,
        ),
        (
            "an auditor, the logs",
            &auditor,
            "filter @source != \"access\"",
            0,
        ),
    ] {
        assert_eq!(count(tok, q), want, "{who}");
    }
    assert!(
        count(&auditor, "filter action = \"login\"") > 0,
        "an auditor's queries read the access audit"
    );
    let admin_audit =
        serde_json::json!({"query": "stats count(*) as n", "access_audit": true}).to_string();
    let (code, text) = s.call("POST", "/api/v1/query", &admin, admin_audit.as_bytes());
    assert_eq!(code, 200, "{text}");
    let n: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        n["rows"][0]["n"].as_u64().unwrap() > 0,
        "admins read the access audit when they ask: {n}"
    );
    // Escapes a security review tried: numeric-looking namespace names compared as numbers, a body
    // field that repeats a namespace coordinate (the index holds both values), extra metadata that
    // shadows a coordinate.
    for (ns, line) in [
        ("100", "ns one hundred\n"),
        ("0100", "ns zero one hundred\n"),
    ] {
        let (code, _) = s.call(
            "POST",
            &format!("/api/v1/ingest?kind=container&namespace={ns}&pod=n"),
            &ingest,
            line.as_bytes(),
        );
        assert_eq!(code, 200);
    }
    let (code, _) = s.call(
        "POST",
        "/api/v1/ingest?kind=json&namespace=team-b",
        &ingest,
        br#"{"kubernetes": {"namespace": "team-a"}, "msg": "sneaky"}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(s.call("POST", "/api/v1/commit", &ingest, b"").0, 200);
    let hundred = token(&data, "analyst", &["--namespaces", "100"]);
    let rows = s.query(&hundred, "stats count(*) as n by kubernetes.namespace");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["kubernetes.namespace"], "100");
    let rows = s.query(&analyst_a, "stats count(*) as n by msg");
    assert!(
        !rows.iter().any(|r| r["msg"] == "sneaky"),
        "an event of team-b naming team-a in its body stays team-b's: {rows:?}"
    );
    let mut shadow = Vec::new();
    quarry_transport::encode_stream_section(
        &quarry_model::Source {
            kind: quarry_model::Kind::Text,
            extra: [("kubernetes.namespace".to_string(), "team-a".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        },
        "shadow",
        1,
        &[quarry_model::Event::text(1, "shadowing a coordinate")],
        &mut shadow,
    );
    let (code, text) = s.call("POST", "/api/v1/ingest/streams", &ingest, &shadow);
    assert_eq!(code, 400, "{text}");
    let agent_rows = s.query(
        &admin,
        "filter @message like \"team a\" | fields kubernetes.node",
    );
    assert_eq!(
        agent_rows[0]["kubernetes.node"], "node-a",
        "the certificate's node is recorded"
    );

    // --- Hunts: the same rule over each scope.
    let rule = "title: any container line\nid: 0e0e0e0e-0000-4000-8000-000000000001\nlogsource:\n  product: kubernetes\n  service: container\ndetection:\n  sel:\n    '@message|contains': line\n  condition: sel\nlevel: low\n";
    let hunt = |tok: &str| -> serde_json::Value {
        let body = serde_json::json!({"rules": [{"origin": "any.yml", "yaml": rule}]}).to_string();
        let (code, text) = s.call("POST", "/api/v1/hunt", tok, body.as_bytes());
        assert_eq!(code, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    };
    let (h_admin, h_a) = (hunt(&admin), hunt(&analyst_a));
    assert_eq!(h_admin["total_hits"], 3, "{h_admin}");
    assert_eq!(h_a["total_hits"], 2, "{h_a}");
    assert!(!h_a.to_string().contains("team b"));

    // --- Alerts: the exec alerts of each namespace.
    let started = Instant::now();
    let alerts = |tok: &str| -> Vec<serde_json::Value> {
        let (code, text) = s.call("GET", "/api/v1/alerts", tok, b"");
        assert_eq!(code, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    };
    while alerts(&admin).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            alerts(&admin)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let exec_of = |list: &[serde_json::Value], ns: &str| -> Option<String> {
        list.iter()
            .find(|a| a["namespace"] == ns)
            .map(|a| a["id"].as_str().unwrap().to_string())
    };
    let all_alerts = alerts(&admin);
    let b_alert = exec_of(&all_alerts, "team-b").expect("an alert in team-b");
    let a_alerts = alerts(&analyst_a);
    assert!(exec_of(&a_alerts, "team-a").is_some());
    assert!(exec_of(&a_alerts, "team-b").is_none(), "{a_alerts:?}");
    let path = format!("/api/v1/alerts/{b_alert}");
    assert_eq!(s.call("GET", &path, &analyst_a, b"").0, 403);
    let ack = br#"{"state": "acknowledged", "note": "mine now"}"#;
    assert_eq!(s.call("POST", &path, &analyst_a, ack).0, 403);
    let (code, text) = s.call("POST", &path, &analyst_b, ack);
    assert_eq!(code, 200, "{text}");
    assert!(
        text.contains("token:analyst"),
        "the caller is who acted: {text}"
    );

    // --- Revocation: the agent certificate works, then is refused in the handshake once revoked.
    assert_eq!(
        agent(&["/api/v1/stats"], b"").0,
        403,
        "ingest role: no stats"
    );
    run_ok(
        quarry()
            .args([
                "certs",
                "revoke",
                "--node",
                "node-a",
                "--reason",
                "node replaced",
                "--data-dir",
            ])
            .arg(&data),
    );
    let (code, _, exit) = agent(
        &["/api/v1/ingest?kind=text", "-X", "POST"],
        b"after revocation\n",
    );
    assert_eq!(code, 0, "no HTTP answer after revocation");
    assert_ne!(exit, 0);
    // An expired certificate from the right CA fails the handshake too.
    let (old, old_key) = expired_cert(&certs, tmp.path());
    let (code, _, exit) = s.curl(
        &[
            "/api/v1/ingest?kind=text",
            "-X",
            "POST",
            "--cert",
            old.to_str().unwrap(),
            "--key",
            old_key.to_str().unwrap(),
        ],
        b"expired\n",
    );
    assert_eq!(
        (code, exit != 0),
        (0, true),
        "an expired client certificate is refused"
    );
    // A revoked token stops working at once.
    let id = analyst_b.split('_').nth(1).unwrap();
    run_ok(
        quarry()
            .args(["token", "revoke", id, "--data-dir"])
            .arg(&data),
    );
    assert_eq!(
        s.call(
            "POST",
            "/api/v1/query",
            &analyst_b,
            br#"{"query": "limit 1"}"#
        )
        .0,
        401
    );

    // --- The access audit, as the auditor searches it (once committed).
    assert_eq!(s.call("POST", "/api/v1/commit", &ingest, b"").0, 200);
    let rows = s.query(
        &auditor,
        "stats count(*) as n by action, status | sort action, status",
    );
    let seen: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for want in [
        ("denied", 401),
        ("denied", 403),
        ("login", 200),
        ("query", 200),
        ("hunt", 200),
        ("alerts.list", 200),
        ("alert.read", 403),
        ("alert.update", 200),
        ("token.revoke", 200),
        ("server.start", 200),
    ] {
        assert!(
            seen.iter().any(|(a, st)| a == want.0 && *st == want.1),
            "{want:?} not in the access audit: {seen:?}"
        );
    }
    let q = s.query(
        &auditor,
        "filter action = \"query\" and actor = \"token:analyst\" | fields query, results | limit 100",
    );
    let ran = |text: &str, rows: u64| {
        q.iter()
            .any(|r| r["query"].as_str().is_some_and(|t| t.contains(text)) && r["results"] == rows)
    };
    assert!(
        ran("ispresent(@message)", 1) && ran("kubernetes.namespace = \"team-b\"", 0),
        "who ran what, with how many result rows: {q:?}"
    );

    // --- Stopped cleanly, the data directory verifies: tokens, revocations and the access audit included.
    let pid = s.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut s = s;
    assert!(s.child.wait().unwrap().success());
    let verify = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(["verify", "--data-dir"])
            .arg(&data)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = verify(&[]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A token slipped into the tokens file behind Quarry's back is caught.
    let tokens = data.join("auth/tokens.json");
    let text = std::fs::read_to_string(&tokens).unwrap();
    std::fs::write(&tokens, text.replacen("\"analyst\"", "\"admin\"", 1)).unwrap();
    let out = verify(&[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("auth/tokens.json"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// OIDC through the server: a token signed by a real issuer-side library (PyJWT) with the issuer's key
/// set in a file, its role and namespaces taken from its claims.
#[test]
fn oidc_tokens_carry_role_and_namespaces() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/trust/tests/oidc_issuer.py"
    );
    let check = Command::new("python3").args([script, "check"]).status();
    assert!(
        check.is_ok_and(|s| s.success()),
        "python3 with PyJWT and cryptography is needed (.ci/run installs them)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("idp");
    run_ok(Command::new("python3").arg(script).arg("keys").arg(&keys));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |user: &str| {
        serde_json::json!({
            "iss": "https://idp.example", "aud": "quarry", "sub": format!("id-{user}"),
            "preferred_username": user, "iat": now, "exp": now + 600,
            "quarry_role": "analyst", "quarry_namespaces": ["team-a"],
        })
    };
    let request = serde_json::json!({
        "jwks": [{"key": "ec256", "alg": "ES256"}],
        "tokens": {
            "alice": {"key": "ec256", "alg": "ES256", "claims": claims("alice")},
            "mallory": {"key": "ec256b", "alg": "ES256", "claims": claims("mallory"),
                        "headers": {"kid": "ec256"}},
        },
    });
    let out = common::run_with_input(
        Command::new("python3").arg(script).arg("sign").arg(&keys),
        request.to_string().as_bytes(),
    );
    assert!(out.status.success());
    let signed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jwks = tmp.path().join("jwks.json");
    std::fs::write(&jwks, signed["jwks"].to_string()).unwrap();

    let data = tmp.path().join("data");
    common::install_token(&data);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args([
            "server",
            "--insecure",
            "--log",
            "warn",
            "--commit-interval",
            "200ms",
        ])
        .args([
            "--oidc-issuer",
            "https://idp.example",
            "--oidc-audience",
            "quarry",
            "--oidc-jwks",
        ])
        .arg(&jwks)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let admin = common::client(&url);
    let started = Instant::now();
    while !admin.healthy() {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(50));
    }
    for ns in ["team-a", "team-b"] {
        let (code, _) = common::post(
            &format!("{url}/api/v1/ingest?kind=container&namespace={ns}&pod=p"),
            &[],
            b"one line\n",
        );
        assert_eq!(code, 200);
    }
    admin.commit().unwrap();
    let as_user = |token: &str| {
        quarry_transport::Client::with_options(
            &url,
            &quarry_transport::ClientOptions {
                token: Some(token.to_string()),
                ..Default::default()
            },
        )
        .unwrap()
        .query(&quarry_transport::QueryRequest {
            query: "stats count(*) as n by kubernetes.namespace".into(),
            ..Default::default()
        })
    };
    let rows = as_user(signed["tokens"]["alice"].as_str().unwrap())
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["kubernetes.namespace"], "team-a");
    let forged = as_user(signed["tokens"]["mallory"].as_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(forged.contains("401"), "{forged}");
    admin.commit().unwrap();
    let audit = admin
        .query(&quarry_transport::QueryRequest {
            query: "filter action = \"query\" | fields actor, auth".into(),
            access_audit: true,
            ..Default::default()
        })
        .unwrap()
        .rows;
    assert!(
        audit
            .iter()
            .any(|r| r["actor"] == "oidc:id-alice (alice)" && r["auth"] == "oidc"),
        "{audit:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `quarry hold`: placed, listed and released on a data directory, each change sealed in its chain.
#[test]
fn legal_holds_through_the_cli_are_in_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let audit =
        "../shared/data/k8s_audit/falco_trace_files/test/trace_files/k8s_audit/exec_pod.json";
    run_ok(
        quarry()
            .args(["import", "--no-detection", "--data-dir"])
            .arg(&data)
            .arg(audit),
    );
    assert!(data.join("integrity").is_dir(), "imports start a chain");
    let hold = |args: &[&str]| {
        quarry()
            .arg("hold")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let placed = hold(&[
        "add",
        "--name",
        "case-4711",
        "--kind",
        "audit",
        "--from",
        "2020-01-01",
        "--to",
        "2030-12-31",
        "--reason",
        "HHS inquiry",
    ]);
    assert!(placed.status.success(), "{placed:?}");
    let again = hold(&["add", "--name", "case-4711", "--reason", "twice"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let listed = String::from_utf8(hold(&["list"]).stdout).unwrap();
    assert!(
        listed.contains("case-4711: audit from 2020-01-01") && listed.contains("HHS inquiry"),
        "{listed}"
    );
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(["verify", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let v = verify();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    // A namespace's retention rule is checked as a namespace name.
    let bad = quarry()
        .args([
            "server",
            "--insecure",
            "--retention-namespace",
            "Payments=2190d",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a Kubernetes namespace name"));
    assert!(hold(&["release", "case-4711"]).status.success());
    assert!(!hold(&["release", "case-4711"]).status.success());
    assert!(String::from_utf8(hold(&["list"]).stdout)
        .unwrap()
        .contains("no holds"));
    let v = verify();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

/// The agent and the client commands over TLS: the agent with its node's certificate, `import`,
/// `query`, `hunt` and `alerts` with `--ca` and a token; without the CA or the token they say why.
#[test]
fn agent_and_clients_speak_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, data) = (tmp.path().join("certs"), tmp.path().join("data"));
    run_ok(
        quarry()
            .args(["certs", "init", "--node", "node-a", "--out"])
            .arg(&certs),
    );
    let admin = token(&data, "admin", &[]);
    let s = TlsServer::start(&data, &certs);
    let url = s.url("");
    let ca = certs.join("ca.pem");

    // The agent ships a pod's lines with its certificate (no token): stamped with its node.
    let pods = tmp.path().join("pods");
    let dir = pods.join("team-a_web-1_uid-1/app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0.log"),
        "2026-11-20T10:00:00.000000000Z stdout F shipped over mutual TLS\n",
    )
    .unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args([
            "agent",
            "--server",
            &url,
            "--no-kubernetes",
            "--node-name",
            "node-a",
        ])
        .args(["--metrics-listen", "", "--log", "warn", "--ca"])
        .arg(&ca)
        .arg("--cert")
        .arg(certs.join("agent-node-a.pem"))
        .arg("--key")
        .arg(certs.join("agent-node-a-key.pem"))
        .arg("--pods-root")
        .arg(&pods)
        .arg("--state-dir")
        .arg(tmp.path().join("agent-state"))
        .env_remove("QUARRY_TOKEN")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(args)
            .args(["--server", &url])
            .env("QUARRY_CA", &ca)
            .env("QUARRY_TOKEN", &admin)
            .output()
            .unwrap()
    };
    let started = Instant::now();
    let rows = loop {
        let _ = s.call("POST", "/api/v1/commit", &admin, b"");
        let out = cli(&[
            "query",
            "--format",
            "json",
            "filter @message like \"mutual TLS\" | fields kubernetes.node, kubernetes.namespace",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        if !rows.is_empty() {
            break rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the agent's line did not arrive"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(rows[0]["kubernetes.node"], "node-a");
    assert_eq!(rows[0]["kubernetes.namespace"], "team-a");

    // import, hunt and alerts over TLS with the token.
    let audit =
        "../shared/data/k8s_audit/falco_trace_files/test/trace_files/k8s_audit/exec_pod.json";
    let out = cli(&["import", "--format", "audit", audit]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["hunt", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["alerts", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the CA, or without a token, the commands say what is missing.
    let no_ca = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["query", "--server", &url, "limit 1"])
        .env_remove("QUARRY_CA")
        .env("QUARRY_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(!no_ca.status.success());
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("--ca"));
    let no_token = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["query", "--server", &url, "limit 1"])
        .env("QUARRY_CA", &ca)
        .env_remove("QUARRY_TOKEN")
        .output()
        .unwrap();
    assert!(!no_token.status.success());
    let err = String::from_utf8_lossy(&no_token.stderr);
    assert!(
        err.contains("401") && err.contains("credentials required"),
        "{err}"
    );
}
