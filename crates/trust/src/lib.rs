//! Trust: what makes Quarry a log store an auditor can rely on (issue 5, in progress).
//!
//! - [`certs`]: a certificate authority, a server certificate and per-node agent certificates for TLS and
//!   mTLS (`quarry certs init`).
//!
//! Dependencies: rcgen (X.509 certificates and ECDSA keys, with ring, which the workspace already builds for
//! rustls); time (certificate validity); thiserror.

pub mod certs;
