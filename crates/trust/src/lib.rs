//! Trust: what makes Quarry a log store an auditor can rely on (issue 5, in progress).
//!
//! - [`certs`]: a certificate authority, a server certificate and per-node agent certificates for TLS and
//!   mTLS (`quarry certs init`).
//! - [`keys`]: encryption at rest's keys: the master key (file, environment, or a KMS through
//!   [`keys::KeyWrapper`]) and the keyring of wrapped per-file data keys (rotation, crypto-shredding).
//! - [`chain`]: tamper evidence: the format of the signed digest chain over a data directory (ed25519
//!   signing keys, SHA-256, RFC 6962 Merkle trees of stored blocks, segment manifests, digests) and the
//!   verifier behind `quarry verify`; the store writes the chain (`quarry_store::integrity`).
//!
//! Dependencies: rcgen (X.509 certificates and ECDSA keys, with ring, which the workspace already builds for
//! rustls); time (certificate validity); thiserror; ring (AES-256-GCM key wrapping, SHA-256 key ids,
//! randomness; SHA-256 and ed25519 of the integrity chain), base64 and serde/serde_json (the keyring file,
//! digests).

pub mod auth;
pub mod certs;
pub mod chain;
pub mod keys;
pub mod oidc;
pub mod tls;
pub mod x509;
