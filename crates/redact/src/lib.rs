//! Redaction of secrets and personal data in log records before they leave a node.
//!
//! The node agent hands every record's raw text to [`Redactor::redact`], which replaces what its detectors
//! find, in place, and says whether the record was kept as it was, changed, or must be dropped. The common
//! case, a record without anything to redact, costs a few cheap byte scans and no allocation: each detector
//! has a literal or byte-class trigger, and the validators run only where a trigger fired.
//!
//! # Detectors
//! All built-in detectors are on by default with action `mask`; each can be set to another [`Action`] or
//! `off` in [`RedactConfig::builtin`]. "Standing alone" below means not glued to a longer token: the byte
//! before is not a letter, digit or `_` (a JSON escape such as `\n` counts as a separator), nor a `.` after a
//! digit or a `-` after a word byte; likewise after.
//!
//! | name | trigger | rule |
//! |---|---|---|
//! | `ssn` | digit-run skip scan | US social security number `AAA-GG-SSSS` with dashes, standing alone; area not 000, 666 or 9xx, group not 00, serial not 0000 |
//! | `card` | digit-run skip scan | 13-19 digits, either one group or groups laid out as cards are printed (groups of 4 with a last group of 1-4, 4-6-5, 4-6-4, 4-3-3-3, 4-4-5) joined by one kind of single separator (space or dash); standing alone or cut from neighbouring numbers at spaces (never at dashes, so UUID-like ids are not split); issuer prefix and length plausible (Visa 4: 13/16/19; Mastercard 51-55, 2221-2720: 16; Amex 34/37: 15; JCB 3528-3589: 16-19; Diners 300-305/309/36/38/39; Maestro 50/56-59; 6xxx: Discover, UnionPay, Maestro, RuPay); Luhn checksum holds |
//! | `email` | `@`, `%40` (memchr) | also URL-encoded (`%40`); local part of 1-64 bytes of letters, digits and `._%+-`, not starting or ending with `.`; domain of at least two labels of letters, digits and `-`, the last (top-level) label only letters, at least two |
//! | `jwt` | `eyJ` | base64url header of 10+ bytes, payload of 3+ bytes and signature either empty or 16+ bytes, joined by dots, not preceded by a base64url byte; further dot-joined segments (JWE) are included |
//! | `bearer` | `bearer`, `basic` (first letter either case, rest all lower or all upper case) | on a word boundary and followed by spaces: for `bearer` the RFC 6750 token (8+ bytes with a digit or symbol, or 20+ bytes, so prose like "bearer authentication" is kept); for `basic` base64 that decodes to something with a `:` (`user:password`). Only the credential is redacted |
//! | `aws_key` | `AKIA` `ASIA` `ABIA` `ACCA`, `secret` | access key id: the prefix and 16 upper-case letters or digits, standing alone; secret access key: a label that is, ignoring case, `_` and `-`, `...secretaccesskey`, `secretkey`, `awssecretkey` or `awssecret`, optional quotes (also `\"`), `=`, `:` or `=>`, optional quotes, then exactly 40 base64 bytes (only the value is redacted) |
//! | `private_key` | `-----BEGIN` | `-----BEGIN <label>-----` where the label contains `PRIVATE KEY`, through the matching `-----END <label>-----` (newlines may be real or escaped `\n`); with no END, through the end of the record or up to the first `"` (so a JSON string keeps its closing quote) |
//! | custom | the regex's own prefilter | a user-given [`CustomRule`] (Rust `regex` syntax); several rules are first checked in one pass with a `RegexSet` |
//!
//! Where matches overlap, the one starting first wins, then the longer, then the detector listed first above.
//!
//! # Actions
//! - `mask`: the match becomes `[REDACTED:<detector>]`.
//! - `hash`: the match becomes `[HMAC:<detector>:<hex>]`, the first 16 hex digits of HMAC-SHA256(key, match),
//!   so equal values stay joinable across records without being revealed. Needs a key.
//! - `drop`: the record is to be dropped; [`Redactor::redact`] returns [`Verdict::Drop`] and counts it.
//!
//! Replacements never contain `"` or `\`, and a match is never allowed to start or end inside a JSON escape
//! sequence (`\n`, `\"`, `\u00e9`), so redacting inside a JSON record keeps it valid JSON. The built-in detectors
//! never match across a `"`; a custom pattern that does can break a JSON record.
//!
//! # Measured precision
//! `tests/corpus.rs` runs all detectors over the 16 loghub `*_2k.log` samples of the shared test data (32,000
//! real log lines), which hold no cards, SSNs, tokens or keys. Matches per detector and corpus:
//!
//! | corpus | lines | ssn | card | email | jwt | bearer | aws_key | private_key |
//! |---|---|---|---|---|---|---|---|---|
//! | Linux | 2000 | 0 | 0 | 1 | 0 | 0 | 0 | 0 |
//! | Mac | 2000 | 0 | 0 | 12 | 0 | 0 | 0 | 0 |
//! | Android, Apache, BGL, HDFS, HPC, Hadoop, HealthApp, OpenSSH, OpenStack, Proxifier, Spark, Thunderbird, Windows, Zookeeper | 2000 each | 0 | 0 | 0 | 0 | 0 | 0 | 0 |
//!
//! All 13 e-mail matches are real addresses, so true positives: `bhcompile@bugs.build.redhat.com` in a kernel
//! banner, and in Mac lines `xpc_ben@163.com`, its URL-encoded `xpc_ben%40163.com`, and the user part
//! `13957525385%40163.com@p28-contacts.icloud.com` of CardDAV URLs. The thousands of `Class@123`, `user@host`
//! and `Object@10.10.34.11` strings in these logs are not matched. Card matches were 13 (HealthApp step counts
//! such as `5015 150454 240`, Mac Wi-Fi channel lists) before the print-layout rule for grouped numbers; the
//! issuer-prefix rule keeps epoch-millisecond timestamps (13 digits, Luhn-valid one time in ten) out.
//!
//! The same test plants a generated secret into every one of those lines (cards of nine brand and length
//! variants, with and without separators, SSNs, e-mails, JWTs, bearer and basic credentials, AWS key ids and
//! secrets, PEM keys with real and with JSON-escaped newlines) and checks, for each line as plain text and as a JSON
//! string field, that the secret is gone and everything else is byte-for-byte unchanged: 32,000 of 32,000.
//!
//! # Speed
//! `cargo bench -p quarry-redact` (`benches/redact.rs`), release build, one core of the 2-core AMD EPYC
//! development machine (shared with other builds, so a little noisy), default configuration:
//!
//! | input | MiB/s |
//! |---|---|
//! | loghub lines without secrets (mean 137 bytes), one call per line | 1,640 |
//! | the same lines joined into 64 KiB records | 2,180 |
//! | the same lines, plus two custom regex rules | 1,330 |
//! | loghub lines with one planted secret each (every line rewritten) | 590 |
//!
//! Alone, on the lines without secrets: `ssn` 3,000, `card` 2,500, `email` 8,700, `jwt` 6,600, `bearer`
//! 5,200, `aws_key` 5,400, `private_key` 6,500 MiB/s. The digit-run scan (cards, SSNs) is the costliest part,
//! because log lines are full of digits.
//!
//! # Dependencies
//! - `memchr`: the `@` scan for e-mails and the `-----END` search of PEM blocks (SIMD).
//! - `aho-corasick`: one pass over all trigger literals of the literal-triggered detectors (SIMD Teddy
//!   prefilter), instead of one pass per literal.
//! - `regex`: custom rules; `RegexSet` checks all of them in one pass when nothing matches.
//! - `hmac`, `sha2`: HMAC-SHA256 for the `hash` action (RustCrypto, constant-time, widely reviewed).
//! - `serde`: the configuration is read from the TOML configuration file or JSON.
//! - `thiserror`: [`RedactError`].

mod config;
mod scan;

pub use config::{Action, CustomRule, RedactConfig, RedactError};

/// Names of the built-in detectors, in the order they run.
pub fn builtin_detectors() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(_, n)| *n)
}

use hmac::{Hmac, Mac};
use regex::{Regex, RegexSet};
use scan::{Builtin, Scanner, BUILTINS};
use sha2::Sha256;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// What [`Redactor::redact`] did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing matched; the text is unchanged.
    Keep,
    /// Something was masked or hashed; the text was rewritten.
    Changed,
    /// A detector with action `drop` matched; the caller must discard the record.
    Drop,
}

/// Counts of one detector since the redactor was built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DetectorCount {
    /// Detector name (built-in or custom).
    pub name: String,
    /// Matches masked or hashed.
    pub redacted: u64,
    /// Records dropped because of this detector.
    pub dropped: u64,
}

/// One active detector: its name, action and counters.
struct Detector {
    name: String,
    action: Action,
    redacted: AtomicU64,
    dropped: AtomicU64,
}

/// A match: byte span in the text and index of the detector.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    det: usize,
}

/// The compiled redaction rules and their counters; `Send + Sync`, share it through an `Arc`.
pub struct Redactor {
    detectors: Vec<Detector>,
    /// Index into `detectors` of each built-in detector, by `Builtin as usize`.
    builtin: [Option<usize>; BUILTINS.len()],
    scanner: Scanner,
    /// Custom rules with the index of their detector.
    custom: Vec<(Regex, usize)>,
    /// All custom patterns, for a single pass when there are several.
    custom_set: Option<RegexSet>,
    /// HMAC state after absorbing the key; cloned for every hashed match.
    mac: Option<Hmac<Sha256>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("detectors", &self.detector_names())
            .field("has_key", &self.mac.is_some())
            .finish()
    }
}

/// Names a custom rule may not take.
fn check_rule_name(name: &str, taken: &[Detector]) -> Result<(), RedactError> {
    let bad = |reason| RedactError::BadRuleName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("must be 1 to 64 bytes long"));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
    {
        return Err(bad(
            "may only contain ASCII letters, digits, `_`, `-` and `.`",
        ));
    }
    if BUILTINS.iter().any(|(_, n)| *n == name) {
        return Err(bad("is the name of a built-in detector"));
    }
    if taken.iter().any(|d| d.name == name) {
        return Err(bad("is used by another custom rule"));
    }
    Ok(())
}

/// Reads the key from the configured file or environment variable, if one is configured.
fn configured_key(cfg: &RedactConfig) -> Result<Option<Vec<u8>>, RedactError> {
    match (&cfg.hmac_key_file, &cfg.hmac_key_env) {
        (Some(_), Some(_)) => Err(RedactError::TwoKeySources),
        (Some(path), None) => {
            let mut key = std::fs::read(path).map_err(|source| RedactError::KeyFile {
                path: path.clone(),
                source,
            })?;
            while matches!(key.last(), Some(b'\n' | b'\r')) {
                key.pop();
            }
            Ok(Some(key))
        }
        (None, Some(var)) => std::env::var(var)
            .map(|v| Some(v.into_bytes()))
            .map_err(|_| RedactError::KeyEnv { var: var.clone() }),
        (None, None) => Ok(None),
    }
}

impl Redactor {
    /// Builds a redactor, reading the HMAC key (if any) from `hmac_key_file` or `hmac_key_env`.
    pub fn new(cfg: &RedactConfig) -> Result<Redactor, RedactError> {
        let key = configured_key(cfg)?;
        Redactor::build(cfg, key)
    }

    /// Builds a redactor with the HMAC key given directly (the configured key sources are not read).
    pub fn with_key(cfg: &RedactConfig, key: Vec<u8>) -> Result<Redactor, RedactError> {
        Redactor::build(cfg, Some(key))
    }

    fn build(cfg: &RedactConfig, key: Option<Vec<u8>>) -> Result<Redactor, RedactError> {
        for name in cfg.builtin.keys() {
            if !BUILTINS.iter().any(|(_, n)| n == name) {
                return Err(RedactError::UnknownDetector {
                    name: name.clone(),
                    known: BUILTINS
                        .iter()
                        .map(|(_, n)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let mut detectors = Vec::new();
        let mut builtin = [None; BUILTINS.len()];
        for (b, name) in BUILTINS {
            let action = cfg.builtin.get(name).copied().unwrap_or_default();
            if cfg.enabled && action != Action::Off {
                builtin[b as usize] = Some(detectors.len());
                detectors.push(Detector::new(name, action));
            }
        }
        let mut custom = Vec::new();
        let mut custom_dets: Vec<Detector> = Vec::new();
        for rule in &cfg.custom {
            check_rule_name(&rule.name, &custom_dets)?;
            let re = Regex::new(&rule.pattern).map_err(|source| RedactError::BadPattern {
                rule: rule.name.clone(),
                source,
            })?;
            if re.is_match("") {
                return Err(RedactError::EmptyMatch {
                    rule: rule.name.clone(),
                    pattern: rule.pattern.clone(),
                });
            }
            custom_dets.push(Detector::new(&rule.name, rule.action));
            if cfg.enabled && rule.action != Action::Off {
                custom.push((re, detectors.len()));
                detectors.push(Detector::new(&rule.name, rule.action));
            }
        }
        let hashed: Vec<&str> = detectors
            .iter()
            .filter(|d| d.action == Action::Hash)
            .map(|d| d.name.as_str())
            .collect();
        let mac = match key {
            Some(k) if k.is_empty() => return Err(RedactError::EmptyKey),
            Some(k) => Some(Hmac::<Sha256>::new_from_slice(&k).map_err(|_| RedactError::EmptyKey)?),
            None if !hashed.is_empty() => {
                return Err(RedactError::MissingKey {
                    detectors: hashed.join(", "),
                })
            }
            None => None,
        };
        let custom_set = if custom.len() > 1 {
            RegexSet::new(custom.iter().map(|(re, _)| re.as_str())).ok()
        } else {
            None
        };
        let scanner = Scanner::new(|b| builtin[b as usize].is_some());
        Ok(Redactor {
            detectors,
            builtin,
            scanner,
            custom,
            custom_set,
            mac,
        })
    }

    /// Redacts `text` in place; returns what happened.
    pub fn redact(&self, text: &mut String) -> Verdict {
        if self.detectors.is_empty() {
            return Verdict::Keep;
        }
        let mut hits: Vec<Hit> = Vec::new();
        let mut dropped_by = None;
        let mut emit = |start: usize, end: usize, det: usize| {
            if self.detectors[det].action == Action::Drop {
                dropped_by = Some(det);
                return false;
            }
            hits.push(Hit { start, end, det });
            true
        };
        let go_on = self.scanner.scan(
            text,
            &mut |s, e, b: Builtin| match self.builtin[b as usize] {
                Some(det) => emit(s, e, det),
                None => true,
            },
        );
        let custom_may_match = !self.custom.is_empty()
            && self
                .custom_set
                .as_ref()
                .is_none_or(|set| set.is_match(text));
        if go_on && custom_may_match {
            'rules: for (re, det) in &self.custom {
                for m in re.find_iter(text) {
                    if m.start() < m.end() && !emit(m.start(), m.end(), *det) {
                        break 'rules;
                    }
                }
            }
        }
        if let Some(det) = dropped_by {
            self.detectors[det].dropped.fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop;
        }
        if hits.is_empty() {
            return Verdict::Keep;
        }
        let b = text.as_bytes();
        hits.retain_mut(|h| match json_safe(text, b, h.start, h.end) {
            Some((s, e)) => {
                h.start = s;
                h.end = e;
                true
            }
            None => false,
        });
        if hits.is_empty() {
            return Verdict::Keep;
        }
        hits.sort_unstable_by(|x, y| {
            x.start
                .cmp(&y.start)
                .then(y.end.cmp(&x.end))
                .then(x.det.cmp(&y.det))
        });
        let mut out = String::with_capacity(text.len() + 16 * hits.len());
        let mut last = 0;
        for h in &hits {
            if h.start < last {
                continue;
            }
            let (Some(before), Some(secret)) = (text.get(last..h.start), text.get(h.start..h.end))
            else {
                continue;
            };
            out.push_str(before);
            self.replace(&mut out, h.det, secret);
            self.detectors[h.det]
                .redacted
                .fetch_add(1, Ordering::Relaxed);
            last = h.end;
        }
        if last == 0 {
            return Verdict::Keep;
        }
        out.push_str(text.get(last..).unwrap_or_default());
        *text = out;
        Verdict::Changed
    }

    /// Appends the replacement of `secret` found by detector `det`.
    fn replace(&self, out: &mut String, det: usize, secret: &str) {
        let d = &self.detectors[det];
        match (&self.mac, d.action) {
            (Some(mac), Action::Hash) => {
                let mut mac = mac.clone();
                mac.update(secret.as_bytes());
                let tag = mac.finalize().into_bytes();
                out.push_str("[HMAC:");
                out.push_str(&d.name);
                out.push(':');
                for &byte in tag.iter().take(8) {
                    out.push(HEX[(byte >> 4) as usize] as char);
                    out.push(HEX[(byte & 15) as usize] as char);
                }
                out.push(']');
            }
            _ => {
                out.push_str("[REDACTED:");
                out.push_str(&d.name);
                out.push(']');
            }
        }
    }

    /// Counts so far: matches redacted and records dropped, for every active detector including custom rules.
    pub fn counts(&self) -> Vec<DetectorCount> {
        self.detectors
            .iter()
            .map(|d| DetectorCount {
                name: d.name.clone(),
                redacted: d.redacted.load(Ordering::Relaxed),
                dropped: d.dropped.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Names of the active detectors (built-in first, then custom), in priority order.
    pub fn detector_names(&self) -> Vec<String> {
        self.detectors.iter().map(|d| d.name.clone()).collect()
    }
}

impl Detector {
    fn new(name: &str, action: Action) -> Detector {
        Detector {
            name: name.to_string(),
            action,
            redacted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Number of backslashes right before `pos`.
fn backslashes_before(b: &[u8], pos: usize) -> usize {
    b[..pos].iter().rev().take_while(|&&c| c == b'\\').count()
}

/// Shrinks the span `[s, e)` so it neither starts nor ends inside a JSON escape sequence, and lies on
/// character boundaries; `None` when nothing is left.
fn json_safe(text: &str, b: &[u8], mut s: usize, mut e: usize) -> Option<(usize, usize)> {
    // Starts on the character of an escape (`\n`, `\"`, `\u00e9`): skip that escape.
    if s < e && backslashes_before(b, s) % 2 == 1 && b"\"\\/bfnrtu".contains(&b[s]) {
        s = (s + if b[s] == b'u' { 5 } else { 1 }).min(e);
    }
    // Ends inside an escape: cut before its backslash.
    let from = e.saturating_sub(6).max(s);
    let mut escaped = backslashes_before(b, from) % 2 == 1;
    let mut j = from;
    while j < e {
        if escaped {
            escaped = false;
        } else if b[j] == b'\\' {
            let len = if b.get(j + 1) == Some(&b'u') { 6 } else { 2 };
            if j + len > e {
                e = j;
                break;
            }
            j += len;
            continue;
        }
        j += 1;
    }
    while s < e && !text.is_char_boundary(s) {
        s += 1;
    }
    while e < b.len() && !text.is_char_boundary(e) {
        e += 1;
    }
    (s < e).then_some((s, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_on() -> Redactor {
        Redactor::new(&RedactConfig::default()).expect("default config is valid")
    }

    fn redacted(r: &Redactor, text: &str) -> (Verdict, String) {
        let mut s = text.to_string();
        let v = r.redact(&mut s);
        (v, s)
    }

    #[test]
    fn redactor_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Redactor>();
    }

    #[test]
    fn masks_every_builtin() {
        let r = all_on();
        let cases = [
            ("ssn 123-45-6789 ok", "ssn [REDACTED:ssn] ok"),
            ("pay 4111 1111 1111 1111 now", "pay [REDACTED:card] now"),
            ("to bob@example.com.", "to [REDACTED:email]."),
            (
                "t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abcdefghijklmnopqrstuv x",
                "t=[REDACTED:jwt] x",
            ),
            (
                "Authorization: Bearer abc123DEF456ghi",
                "Authorization: Bearer [REDACTED:bearer]",
            ),
            ("id AKIAIOSFODNN7EXAMPLE,", "id [REDACTED:aws_key],"),
            (
                "k=-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----!",
                "k=[REDACTED:private_key]!",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                redacted(&r, input),
                (Verdict::Changed, want.to_string()),
                "{input:?}"
            );
        }
        let counts = r.counts();
        assert_eq!(counts.len(), 7);
        assert!(
            counts.iter().all(|c| c.redacted == 1 && c.dropped == 0),
            "{counts:?}"
        );
    }

    #[test]
    fn keeps_clean_text_untouched() {
        let r = all_on();
        let line = "2023-10-05 12:34:56,789 INFO [main] Listener@493 - request 8c1f5e2a-1b2c-4d5e-8f90-123456789012 from 10.0.0.1 took 12 ms";
        assert_eq!(redacted(&r, line), (Verdict::Keep, line.to_string()));
        assert_eq!(redacted(&r, ""), (Verdict::Keep, String::new()));
    }

    #[test]
    fn overlapping_matches_keep_the_outer_one() {
        let r = all_on();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abcdefghijklmnopqrstuv";
        let (_, out) = redacted(&r, &format!("Authorization: Bearer {jwt}"));
        assert_eq!(out, "Authorization: Bearer [REDACTED:jwt]");
    }

    #[test]
    fn json_escapes_are_not_cut() {
        let r = all_on();
        // The `n` of `\n` is an allowed local-part byte, but must stay with its backslash.
        let (_, out) = redacted(&r, r#"{"m":"x\nbob@example.com"}"#);
        assert_eq!(out, r#"{"m":"x\n[REDACTED:email]"}"#);
        let cfg = RedactConfig {
            custom: vec![CustomRule {
                name: "greedy".into(),
                pattern: r"ab.".into(),
                action: Action::Mask,
            }],
            ..RedactConfig::default()
        };
        let r = Redactor::new(&cfg).unwrap();
        let (_, out) = redacted(&r, r#"{"m":"ab\"x"}"#);
        assert_eq!(out, r#"{"m":"[REDACTED:greedy]\"x"}"#);
        let (_, out) = redacted(&r, r#"{"m":"\\ab\u00e9"}"#);
        assert_eq!(out, r#"{"m":"\\[REDACTED:greedy]\u00e9"}"#);
    }

    #[test]
    fn json_safe_spans() {
        let t = r#"a\nb\u00e9c"#;
        let b = t.as_bytes();
        assert_eq!(json_safe(t, b, 2, 4), Some((3, 4))); // starts on the `n` of `\n`
        assert_eq!(json_safe(t, b, 0, 2), Some((0, 1))); // ends on the backslash
        assert_eq!(json_safe(t, b, 3, 7), Some((3, 4))); // ends inside `\u00e9`
        assert_eq!(json_safe(t, b, 5, 10), None); // only the inside of `\u00e9`
        assert_eq!(json_safe(t, b, 0, 11), Some((0, 11)));
    }

    #[test]
    fn hex_of_hmac_is_16_lowercase_hex_digits() {
        let r = Redactor::with_key(
            &RedactConfig {
                builtin: [("email".to_string(), Action::Hash)].into(),
                ..RedactConfig::default()
            },
            b"k".to_vec(),
        )
        .unwrap();
        let (_, out) = redacted(&r, "a@example.com");
        let tag = out
            .strip_prefix("[HMAC:email:")
            .and_then(|t| t.strip_suffix(']'))
            .unwrap();
        assert_eq!(tag.len(), 16);
        assert!(tag
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        // Independently computed: the first 8 bytes of HMAC-SHA256("k", "a@example.com").
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"a@example.com");
        let want: String = mac.finalize().into_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(tag, want);
    }
}
