//! The public API: configuration, actions, errors, counts, sharing between threads, and robustness on
//! arbitrary input.

mod common;

use common::Secrets;
use quarry_redact::{
    Action, CustomRule, DetectorCount, RedactConfig, RedactError, Redactor, Verdict,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

fn with(builtin: &[(&str, Action)]) -> RedactConfig {
    RedactConfig {
        builtin: builtin.iter().map(|(n, a)| (n.to_string(), *a)).collect(),
        ..RedactConfig::default()
    }
}

fn redacted(r: &Redactor, text: &str) -> (Verdict, String) {
    let mut s = text.to_string();
    let v = r.redact(&mut s);
    (v, s)
}

fn count(r: &Redactor, name: &str) -> DetectorCount {
    r.counts()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no detector {name}"))
}

#[test]
fn config_from_toml_with_defaults() {
    let cfg: RedactConfig = toml::from_str(
        r#"
        [builtin]
        email = "hash"
        ssn = "off"
        card = "drop"

        [[custom]]
        name = "employee_id"
        pattern = 'EMP-\d{6}'
        "#,
    )
    .expect("valid TOML");
    assert!(cfg.enabled);
    assert_eq!(cfg.builtin.get("email"), Some(&Action::Hash));
    assert_eq!(cfg.custom[0].action, Action::Mask);
    let r = Redactor::with_key(&cfg, b"secret key".to_vec()).expect("valid");
    assert_eq!(
        r.detector_names(),
        [
            "card",
            "email",
            "jwt",
            "bearer",
            "aws_key",
            "private_key",
            "employee_id"
        ]
    );
    assert_eq!(
        redacted(&r, "user EMP-123456 done").1,
        "user [REDACTED:employee_id] done"
    );
    assert_eq!(redacted(&r, "ssn 123-45-6789").0, Verdict::Keep);

    let empty: RedactConfig = serde_json::from_str("{}").expect("all fields default");
    assert_eq!(empty, RedactConfig::default());
    assert!(
        toml::from_str::<RedactConfig>("enable = true").is_err(),
        "unknown keys are refused"
    );
    assert!(
        toml::from_str::<RedactConfig>("[builtin]\nemail = \"blur\"").is_err(),
        "unknown actions are refused"
    );
}

#[test]
fn configuration_errors_name_the_problem() {
    let err = |cfg: &RedactConfig| Redactor::new(cfg).expect_err("must be refused").to_string();

    let e = err(&with(&[("creditcard", Action::Mask)]));
    assert!(
        e.contains("unknown built-in detector `creditcard`") && e.contains("card"),
        "{e}"
    );

    let bad = RedactConfig {
        custom: vec![CustomRule {
            name: "ticket".into(),
            pattern: "TCK-(\\d+".into(),
            action: Action::Mask,
        }],
        ..RedactConfig::default()
    };
    let e = err(&bad);
    assert!(
        e.contains("custom rule `ticket`") && e.contains("invalid pattern"),
        "{e}"
    );
    assert!(matches!(
        Redactor::new(&bad),
        Err(RedactError::BadPattern { .. })
    ));

    let empty = RedactConfig {
        custom: vec![CustomRule {
            name: "opt".into(),
            pattern: "x*".into(),
            action: Action::Mask,
        }],
        ..RedactConfig::default()
    };
    assert!(err(&empty).contains("matches the empty string"));

    for (name, why) in [
        ("", "1 to 64"),
        ("a b", "may only contain"),
        ("email", "built-in"),
        ("x\"y", "may only contain"),
    ] {
        let cfg = RedactConfig {
            custom: vec![CustomRule {
                name: name.into(),
                pattern: "abc".into(),
                action: Action::Mask,
            }],
            ..RedactConfig::default()
        };
        let e = err(&cfg);
        assert!(e.contains(why), "{name:?}: {e}");
    }
    let twice = RedactConfig {
        custom: vec![
            CustomRule {
                name: "a".into(),
                pattern: "abc".into(),
                action: Action::Mask,
            },
            CustomRule {
                name: "a".into(),
                pattern: "def".into(),
                action: Action::Mask,
            },
        ],
        ..RedactConfig::default()
    };
    assert!(err(&twice).contains("used by another custom rule"));

    let e = err(&with(&[("jwt", Action::Hash), ("email", Action::Hash)]));
    assert!(
        e.contains("needs an HMAC key") && e.contains("email") && e.contains("jwt"),
        "{e}"
    );

    let missing_file = RedactConfig {
        hmac_key_file: Some("/nonexistent/quarry/key".into()),
        ..with(&[("email", Action::Hash)])
    };
    assert!(err(&missing_file).contains("/nonexistent/quarry/key"));

    let missing_env = RedactConfig {
        hmac_key_env: Some("QUARRY_TEST_REDACT_KEY_THAT_IS_NOT_SET".into()),
        ..with(&[("email", Action::Hash)])
    };
    assert!(err(&missing_env).contains("QUARRY_TEST_REDACT_KEY_THAT_IS_NOT_SET"));

    let e = Redactor::with_key(&with(&[("email", Action::Hash)]), Vec::new())
        .expect_err("empty key")
        .to_string();
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn hash_is_stable_per_key_and_differs_between_keys() {
    let cfg = with(&[("email", Action::Hash), ("card", Action::Hash)]);
    let a = Redactor::with_key(&cfg, b"key-a".to_vec()).unwrap();
    let a2 = Redactor::with_key(&cfg, b"key-a".to_vec()).unwrap();
    let b = Redactor::with_key(&cfg, b"key-b".to_vec()).unwrap();

    let (v, one) = redacted(
        &a,
        "from alice@example.com to bob@example.com, cc alice@example.com",
    );
    assert_eq!(v, Verdict::Changed);
    let tokens: Vec<&str> = one
        .split(' ')
        .filter(|w| w.starts_with("[HMAC:"))
        .map(|w| w.trim_end_matches(','))
        .collect();
    assert_eq!(tokens.len(), 3, "{one}");
    assert_eq!(tokens[0], tokens[2], "same value, same token");
    assert_ne!(tokens[0], tokens[1], "different values, different tokens");
    assert!(tokens[0].starts_with("[HMAC:email:") && tokens[0].len() == "[HMAC:email:]".len() + 16);
    assert!(!one.contains("alice") && !one.contains("bob"));

    assert_eq!(
        redacted(&a2, "alice@example.com").1,
        tokens[0],
        "same key in another redactor"
    );
    assert_ne!(
        redacted(&b, "alice@example.com").1,
        tokens[0],
        "another key"
    );
    let card = redacted(&a, "4111111111111111").1;
    assert!(card.starts_with("[HMAC:card:"), "{card}");
    assert_eq!(count(&a, "email").redacted, 3);
    assert_eq!(count(&a, "card").redacted, 1);
}

#[test]
fn key_from_file_and_environment() {
    let dir = std::env::temp_dir().join(format!("quarry-redact-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    std::fs::write(&path, b"file-key\n").unwrap();
    let from_file = Redactor::new(&RedactConfig {
        hmac_key_file: Some(path.clone()),
        ..with(&[("email", Action::Hash)])
    })
    .unwrap();
    let direct =
        Redactor::with_key(&with(&[("email", Action::Hash)]), b"file-key".to_vec()).unwrap();
    assert_eq!(
        redacted(&from_file, "a@b.io").1,
        redacted(&direct, "a@b.io").1,
        "the trailing newline is not key"
    );
    std::fs::remove_dir_all(&dir).ok();

    // PATH is set in every test environment; its value is as good a key as any.
    let path_var = std::env::var("PATH").expect("PATH is set");
    let from_env = Redactor::new(&RedactConfig {
        hmac_key_env: Some("PATH".into()),
        ..with(&[("email", Action::Hash)])
    })
    .unwrap();
    let direct =
        Redactor::with_key(&with(&[("email", Action::Hash)]), path_var.into_bytes()).unwrap();
    assert_eq!(
        redacted(&from_env, "a@b.io").1,
        redacted(&direct, "a@b.io").1
    );
}

#[test]
fn drop_returns_drop_and_counts() {
    let r = Redactor::new(&with(&[
        ("private_key", Action::Drop),
        ("ssn", Action::Drop),
    ]))
    .unwrap();
    let mut key = "x -----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY----- y".to_string();
    assert_eq!(r.redact(&mut key), Verdict::Drop);
    assert_eq!(redacted(&r, "ssn 123-45-6789").0, Verdict::Drop);
    assert_eq!(redacted(&r, "ssn 123-45-6789 and a@b.io").0, Verdict::Drop);
    assert_eq!(redacted(&r, "mail a@b.io").0, Verdict::Changed);
    assert_eq!(redacted(&r, "nothing here").0, Verdict::Keep);
    assert_eq!(
        count(&r, "private_key"),
        DetectorCount {
            name: "private_key".into(),
            redacted: 0,
            dropped: 1
        }
    );
    assert_eq!(count(&r, "ssn").dropped, 2);
    assert_eq!(count(&r, "email").redacted, 1);

    let custom = RedactConfig {
        custom: vec![CustomRule {
            name: "canary".into(),
            pattern: "CANARY-[0-9a-f]{8}".into(),
            action: Action::Drop,
        }],
        ..RedactConfig::default()
    };
    let r = Redactor::new(&custom).unwrap();
    assert_eq!(redacted(&r, "tripped CANARY-deadbeef").0, Verdict::Drop);
    assert_eq!(count(&r, "canary").dropped, 1);
}

#[test]
fn off_and_disabled() {
    let r = Redactor::new(&with(&[("email", Action::Off)])).unwrap();
    assert!(!r.detector_names().contains(&"email".to_string()));
    assert_eq!(redacted(&r, "a@b.io").0, Verdict::Keep);
    let r = Redactor::new(&RedactConfig {
        enabled: false,
        ..with(&[("email", Action::Hash)])
    })
    .expect("a disabled redactor needs no key");
    assert!(r.detector_names().is_empty());
    assert_eq!(redacted(&r, "a@b.io 4111111111111111").0, Verdict::Keep);
}

#[test]
fn several_custom_rules() {
    let rule = |name: &str, pattern: &str| CustomRule {
        name: name.into(),
        pattern: pattern.into(),
        action: Action::Mask,
    };
    let cfg = RedactConfig {
        custom: vec![
            rule("emp", r"\bEMP-\d{6}\b"),
            rule("ticket", r"\bTCK-[A-Z]{3}\d+"),
            rule("word", r"\bhunter2\b"),
        ],
        ..RedactConfig::default()
    };
    let r = Redactor::new(&cfg).unwrap();
    assert_eq!(
        redacted(
            &r,
            "EMP-123456 opened TCK-ABC99 with hunter2 and EMP-1234567"
        )
        .1,
        "[REDACTED:emp] opened [REDACTED:ticket] with [REDACTED:word] and EMP-1234567"
    );
    assert_eq!(redacted(&r, "nothing to see").0, Verdict::Keep);
    assert_eq!(count(&r, "ticket").redacted, 1);
}

#[test]
fn shared_between_threads() {
    let r = Arc::new(Redactor::new(&RedactConfig::default()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                for i in 0..500 {
                    let mut s = format!("thread {t} line {i} user{i}@example.com");
                    assert_eq!(r.redact(&mut s), Verdict::Changed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no panic");
    }
    assert_eq!(count(&r, "email").redacted, 2000);
}

/// Random text built from pieces that trigger the detectors, escapes, quotes and non-ASCII characters.
fn random_text(rng: &mut ChaCha8Rng, secrets: &mut Secrets) -> String {
    const PIECES: &[&str] = &[
        "eyJ",
        "eyJhbGciOiJIUzI1NiJ9",
        ".",
        "..",
        "Bearer ",
        "bearer",
        "Basic ",
        "basic ",
        "AKIA",
        "ASIA",
        "ABCDEFGHIJ",
        "aws_secret_access_key",
        "SecretAccessKey",
        "\": \"",
        "=",
        ":",
        "=>",
        "-----BEGIN ",
        "RSA PRIVATE KEY",
        "-----",
        "-----END ",
        "PRIVATE KEY-----",
        "@",
        "%40",
        "%",
        "example.com",
        "a",
        "Z",
        "_",
        "-",
        " ",
        "  ",
        "\t",
        "\n",
        "\\",
        "\\n",
        "\\\"",
        "\\u00e9",
        "\"",
        "'",
        "é",
        "日本",
        "🦀",
        "\u{0}",
        "0",
        "4",
        "9",
        "123",
        "4111",
        "1111",
        "-45-",
        "6789",
        "/",
        "+",
        "==",
        "dXNlcjpwYXNz",
    ];
    let mut s = String::new();
    for _ in 0..rng.random_range(0..40) {
        match rng.random_range(0..20) {
            0 => s.push_str(&secrets.plant(rng.random_range(0..11)).secret),
            _ => s.push_str(PIECES[rng.random_range(0..PIECES.len())]),
        }
    }
    s
}

#[test]
fn arbitrary_input_never_panics_and_json_stays_json() {
    let custom = RedactConfig {
        custom: vec![CustomRule {
            name: "digits".into(),
            pattern: r"\d{5,}".into(),
            action: Action::Hash,
        }],
        ..with(&[("email", Action::Hash)])
    };
    let hashing = Redactor::with_key(&custom, b"k".to_vec()).unwrap();
    let builtin = Redactor::new(&RedactConfig::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut secrets = Secrets::new(5);
    let mut changed = 0;
    for _ in 0..20_000 {
        let text = random_text(&mut rng, &mut secrets);
        let mut s = text.clone();
        if hashing.redact(&mut s) == Verdict::Keep {
            assert_eq!(s, text);
        }
        // Built-in detectors on a JSON document whose strings hold the random text.
        let doc =
            serde_json::json!({ "log": text, "nested": { "k": [text.clone(), 1] } }).to_string();
        let mut out = doc.clone();
        match builtin.redact(&mut out) {
            Verdict::Keep => assert_eq!(out, doc),
            Verdict::Changed => changed += 1,
            Verdict::Drop => panic!("nothing drops by default"),
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&out) {
            panic!("redaction broke JSON ({e}):\n  in:  {doc}\n  out: {out}");
        }
    }
    assert!(
        changed > 1000,
        "the random texts should often hold something to redact ({changed})"
    );
}
