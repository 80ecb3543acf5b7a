//! Precision on real log lines: secrets planted into the loghub samples must all vanish with the rest of
//! each line intact (also inside JSON), and the unplanted samples must give (almost) no matches.
//!
//! Data: loghub (Zhu et al., ISSRE 2023) `*_2k.log` samples in the shared test data.

mod common;

use common::{loghub_lines, planted_corpus, SYSTEMS};
use quarry_redact::{RedactConfig, Redactor, Verdict};
use std::collections::BTreeMap;

fn redactor() -> Redactor {
    Redactor::new(&RedactConfig::default()).expect("the default configuration is valid")
}

fn redacted(r: &Redactor, text: &str) -> String {
    let mut s = text.to_string();
    r.redact(&mut s);
    s
}

/// JSON string body of `s` (without the surrounding quotes), as it appears inside a JSON document.
fn json_body(s: &str) -> String {
    let q = serde_json::to_string(s).expect("a string serialises");
    q[1..q.len() - 1].to_string()
}

#[test]
fn planted_secrets_vanish_and_the_rest_of_the_line_stays() {
    let r = redactor();
    let corpus = planted_corpus(20_231_005);
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for p in &corpus {
        let text = p.text();
        let want = format!(
            "{}{}[REDACTED:{}]{}{}",
            redacted(&r, &p.left),
            p.plant.before,
            p.plant.detector,
            p.plant.after,
            redacted(&r, &p.right)
        );
        *per_kind.entry(p.plant.detector).or_default() += 1;

        // Plain text.
        let mut got = text.clone();
        let verdict = r.redact(&mut got);
        if verdict != Verdict::Changed || got.contains(&p.plant.secret) || got != want {
            failures.push(format!(
                "plain {verdict:?}\n  in:   {text:?}\n  got:  {got:?}\n  want: {want:?}"
            ));
        }

        // The same line as a JSON string field.
        let doc = serde_json::json!({ "log": text, "stream": "stdout" }).to_string();
        let mut got = doc.clone();
        r.redact(&mut got);
        match serde_json::from_str::<serde_json::Value>(&got) {
            Ok(v)
                if v["log"] == want.as_str()
                    && v["stream"] == "stdout"
                    && !got.contains(&json_body(&p.plant.secret)) => {}
            other => failures.push(format!(
                "json\n  in:   {doc}\n  got:  {got}\n  parsed: {other:?}"
            )),
        }

        // Secrets recognisable without context, as a JSON value of their own.
        if !matches!(
            p.plant.before.as_str(),
            "Authorization: Basic "
                | "aws_secret_access_key="
                | "\"SecretAccessKey\": \""
                | "AWS_SECRET_ACCESS_KEY: "
        ) && !p.plant.before.to_ascii_lowercase().contains("bearer")
            && !p.plant.before.starts_with("{\"key\"")
        {
            let doc = serde_json::json!({ "v": p.plant.secret }).to_string();
            let mut got = doc.clone();
            r.redact(&mut got);
            let want_v = format!("[REDACTED:{}]", p.plant.detector);
            match serde_json::from_str::<serde_json::Value>(&got) {
                Ok(v) if v["v"] == want_v.as_str() => {}
                other => failures.push(format!(
                    "json value\n  in:   {doc}\n  got:  {got}\n  parsed: {other:?}"
                )),
            }
        }
    }
    println!("planted per detector: {per_kind:?}");
    assert!(
        failures.is_empty(),
        "{} of {} planted lines failed; first ones:\n{}",
        failures.len(),
        corpus.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        corpus.len() > 30_000,
        "the loghub samples hold about 32k lines, got {}",
        corpus.len()
    );
    for det in [
        "ssn",
        "card",
        "email",
        "jwt",
        "bearer",
        "aws_key",
        "private_key",
    ] {
        assert!(
            per_kind.get(det).copied().unwrap_or(0) >= 2_000,
            "too few {det} planted: {per_kind:?}"
        );
    }
}

#[test]
fn false_positives_on_loghub_samples() {
    let names = redactor().detector_names();
    let mut table = String::new();
    table.push_str(&format!("| corpus | lines | {} |\n", names.join(" | ")));
    table.push_str(&format!("|---|---|{}\n", "---|".repeat(names.len())));
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut changed = Vec::new();
    let mut lines_total = 0;
    for sys in SYSTEMS {
        let r = redactor();
        let lines = loghub_lines(sys);
        lines_total += lines.len();
        for line in &lines {
            let mut s = line.clone();
            if r.redact(&mut s) != Verdict::Keep {
                changed.push(format!("{sys}: {s}"));
            }
        }
        let counts = r.counts();
        let row: Vec<String> = counts.iter().map(|c| c.redacted.to_string()).collect();
        table.push_str(&format!(
            "| {sys} | {} | {} |\n",
            lines.len(),
            row.join(" | ")
        ));
        for c in counts {
            *totals.entry(c.name).or_default() += c.redacted;
        }
    }
    println!("{table}");
    println!("changed lines ({}):", changed.len());
    for l in changed.iter().take(40) {
        println!("  {l}");
    }
    println!("totals over {lines_total} lines: {totals:?}");
    for (det, n) in &totals {
        // The samples hold no cards, SSNs, tokens or keys; they do hold a few real e-mail addresses.
        let bound = if det == "email" { 20 } else { 0 };
        assert!(
            *n <= bound,
            "{det}: {n} matches on the loghub samples (bound {bound})\n{}",
            changed.join("\n")
        );
    }
}
