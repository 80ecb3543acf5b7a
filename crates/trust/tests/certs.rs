//! `certs::init` checked by a real X.509 implementation: OpenSSL (Debian's `openssl`) verifies the chain,
//! reads the names and purposes, and matches each key to its certificate.

use quarry_trust::certs::{init, CertError, InitOptions};
use std::path::Path;
use std::process::Command;

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl) runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn openssl_accepts_the_chain_names_and_purposes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        out: dir.path().join("certs"),
        server_names: vec!["quarry.example".into(), "10.0.0.5".into()],
        nodes: vec!["ip-10-0-1-2.ec2.internal".into(), "node-b".into()],
        days: 30,
        force: false,
    };
    let files = init(&opts).unwrap();
    assert_eq!(files.len(), 8);
    let d = opts.out.as_path();

    let verified = openssl(
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslserver",
            "server.pem",
        ],
        d,
    );
    assert!(verified.contains("server.pem: OK"), "{verified}");
    for node in &opts.nodes {
        let cert = format!("agent-{node}.pem");
        let out = openssl(
            &[
                "verify",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "sslclient",
                &cert,
            ],
            d,
        );
        assert!(out.contains(": OK"), "{out}");
        // A client certificate is not a server's.
        let wrong = Command::new("openssl")
            .args([
                "verify",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "sslserver",
                &cert,
            ])
            .current_dir(d)
            .output()
            .unwrap();
        assert!(!wrong.status.success());
        let subject = openssl(&["x509", "-in", &cert, "-noout", "-subject"], d);
        assert!(subject.contains(&format!("CN = {node}")), "{subject}");
        // The key belongs to the certificate.
        let key = format!("agent-{node}-key.pem");
        assert_eq!(
            openssl(&["pkey", "-in", &key, "-pubout"], d),
            openssl(&["x509", "-in", &cert, "-noout", "-pubkey"], d)
        );
    }
    let sans = openssl(
        &[
            "x509",
            "-in",
            "server.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
        d,
    );
    for want in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "DNS:quarry.example",
        "IP Address:10.0.0.5",
    ] {
        assert!(sans.contains(want), "{want} in {sans}");
    }
    let ca = openssl(
        &[
            "x509",
            "-in",
            "ca.pem",
            "-noout",
            "-ext",
            "basicConstraints",
        ],
        d,
    );
    assert!(ca.contains("CA:TRUE"), "{ca}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in &files {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            let secret = f.to_string_lossy().ends_with("-key.pem");
            assert_eq!(mode, if secret { 0o600 } else { 0o644 }, "{}", f.display());
        }
    }

    // Nothing is overwritten unless asked; a bad node name writes nothing.
    assert!(matches!(init(&opts), Err(CertError::Exists(_))));
    let again = InitOptions {
        force: true,
        ..opts.clone()
    };
    assert_eq!(init(&again).unwrap().len(), 8);
    let bad = InitOptions {
        out: dir.path().join("other"),
        nodes: vec!["../escape".into()],
        ..opts
    };
    assert!(matches!(init(&bad), Err(CertError::Name { .. })));
    assert!(!dir.path().join("other").exists());
}

/// What the server reads from a client certificate (`x509::parse_cert`) agrees with OpenSSL's reading.
#[test]
fn the_servers_certificate_reader_agrees_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    init(&InitOptions {
        out: out.clone(),
        server_names: vec![],
        nodes: vec!["ip-10-0-1-2.ec2.internal".into()],
        days: 30,
        force: false,
    })
    .unwrap();
    let file = "agent-ip-10-0-1-2.ec2.internal.pem";
    let der = quarry_trust::tls::load_certs(&out.join(file)).unwrap();
    let info = quarry_trust::x509::parse_cert(&der[0]).unwrap();
    assert_eq!(info.node(), Some("ip-10-0-1-2.ec2.internal"));
    assert_eq!(info.dns_names, ["ip-10-0-1-2.ec2.internal"]);
    let serial = openssl(&["x509", "-in", file, "-noout", "-serial"], &out);
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    assert_eq!(
        serial.trim_start_matches('0'),
        info.serial.trim_start_matches('0')
    );
    // notBefore as OpenSSL prints it, turned into epoch seconds by GNU date.
    let start = openssl(&["x509", "-in", file, "-noout", "-startdate"], &out);
    let start = start.trim().trim_start_matches("notBefore=");
    let epoch = Command::new("date")
        .args(["-u", "-d", start, "+%s"])
        .output()
        .unwrap();
    let epoch: i64 = String::from_utf8_lossy(&epoch.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(info.not_before, epoch);
}
