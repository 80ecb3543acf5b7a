//! Certificates for a test or small setup (`quarry certs init`): a certificate authority, a server
//! certificate and one client certificate per node, so that every listener can speak TLS and agents can
//! authenticate with mTLS (the certificate's common name and DNS name are the node's name).
//!
//! Keys are ECDSA P-256, written with mode 0600; certificates are PEM. The CA's key is kept next to it
//! (`ca-key.pem`) so that it can be moved offline. Nothing is overwritten unless asked.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// What [`init`] creates.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Folder the files go to (created if missing).
    pub out: PathBuf,
    /// Names the server answers to besides `localhost`, `127.0.0.1` and `::1` (DNS names or addresses).
    pub server_names: Vec<String>,
    /// Nodes to issue agent certificates for.
    pub nodes: Vec<String>,
    /// Validity of the server and agent certificates, in days (the CA lives ten times longer).
    pub days: u32,
    /// Replace files that exist.
    pub force: bool,
}

/// Failures of [`init`].
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file would be overwritten.
    #[error("{0} exists; give --force to replace the whole set, or another --out folder")]
    Exists(PathBuf),
    /// A node or server name cannot be used.
    #[error("{name:?}: {why}")]
    Name {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Making a key or certificate failed.
    #[error("cannot make a certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

/// A PEM file to write, and whether it is secret.
struct Pem {
    name: String,
    text: String,
    secret: bool,
}

/// Checks a node name: it names files (`agent-NAME.pem`) and is the certificate's DNS name, so it must be
/// a DNS name (letters, digits, `-` and `.`, as Kubernetes node names are).
pub fn check_node_name(name: &str) -> Result<(), CertError> {
    let bad = |why: &str| {
        Err(CertError::Name {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() || name.len() > 253 {
        return bad("a node name has 1 to 253 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return bad("a node name has only letters, digits, '-' and '.' (it is a DNS name)");
    }
    if name.starts_with(['.', '-']) || name.ends_with(['.', '-']) || name.contains("..") {
        return bad("a node name cannot start or end with '.' or '-', or hold '..'");
    }
    Ok(())
}

/// Creates the CA, the server's certificate and one agent certificate per node in `opts.out`; returns
/// the files written: `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`, `agent-NAME.pem`,
/// `agent-NAME-key.pem`.
pub fn init(opts: &InitOptions) -> Result<Vec<PathBuf>, CertError> {
    for n in &opts.nodes {
        check_node_name(n)?;
    }
    let mut server_names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in &opts.server_names {
        if !server_names.contains(n) {
            server_names.push(n.clone());
        }
    }
    let now = OffsetDateTime::now_utc();
    let days = i64::from(opts.days.max(1));
    let mut pems = Vec::new();

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    // A distinct name per CA: two CAs of the same name make TLS stacks pick the wrong one and fail with
    // confusing errors instead of "unknown CA".
    let mut id = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    ca.distinguished_name = name(&format!("Quarry CA {}", crate::auth::hex(&id)));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - Duration::minutes(5);
    ca.not_after = now + Duration::days(days * 10);
    let ca_cert = ca.self_signed(&ca_key)?;
    pems.push(pem("ca.pem", ca_cert.pem(), false));
    pems.push(pem("ca-key.pem", ca_key.serialize_pem(), true));

    let leaf = |cn: &str, sans: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.subject_alt_names = sans
            .iter()
            .map(|s| san(s))
            .collect::<Result<Vec<_>, CertError>>()?;
        p.distinguished_name = name(cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(days);
        let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
        Ok::<_, CertError>((cert.pem(), key.serialize_pem()))
    };
    let (cert, key) = leaf(
        "quarry server",
        server_names,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    pems.push(pem("server.pem", cert, false));
    pems.push(pem("server-key.pem", key, true));
    for node in &opts.nodes {
        let (cert, key) = leaf(
            node,
            vec![node.clone()],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        pems.push(pem(&format!("agent-{node}.pem"), cert, false));
        pems.push(pem(&format!("agent-{node}-key.pem"), key, true));
    }

    std::fs::create_dir_all(&opts.out).map_err(|source| CertError::Io {
        path: opts.out.clone(),
        source,
    })?;
    if !opts.force {
        if let Some(p) = pems
            .iter()
            .map(|p| opts.out.join(&p.name))
            .find(|p| p.exists())
        {
            return Err(CertError::Exists(p));
        }
    }
    pems.iter().map(|p| write(&opts.out, p)).collect()
}

fn pem(name: &str, text: String, secret: bool) -> Pem {
    Pem {
        name: name.to_string(),
        text,
        secret,
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Quarry");
    dn.push(DnType::CommonName, cn);
    dn
}

/// A subject alternative name: an address, or a DNS name.
fn san(s: &str) -> Result<SanType, CertError> {
    Ok(match s.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(s.to_string().try_into().map_err(|_| CertError::Name {
            name: s.to_string(),
            why: "not an address or a DNS name".into(),
        })?),
    })
}

/// Writes one file, keys readable by the owner only.
fn write(dir: &Path, p: &Pem) -> Result<PathBuf, CertError> {
    let path = dir.join(&p.name);
    let io = |source| CertError::Io {
        path: path.clone(),
        source,
    };
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(if p.secret { 0o600 } else { 0o644 });
    }
    let mut f = o.open(&path).map_err(io)?;
    f.write_all(p.text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    #[cfg(unix)]
    if p.secret {
        // An existing file (--force) keeps its old mode through open(); set it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_must_be_dns_names() {
        for ok in ["ip-10-0-1-2.ec2.internal", "node-a", "n1"] {
            check_node_name(ok).unwrap();
        }
        for bad in ["", "../etc", "a/b", "-a", "a.", "a..b", "a b", "ä"] {
            assert!(check_node_name(bad).is_err(), "{bad:?}");
        }
    }
}
