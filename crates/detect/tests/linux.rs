//! The built-in sshd rules (`rules/linux/linux_sshd_brute_force.yml`) over syslog lines read by Quarry's
//! parser: brute force is grouped by the client address the parser extracts (`sshd.src_ip`, or
//! `sshd.src_host` for PAM host names), across nodes; failures whose client is unknown (events stored
//! before the parser extracted it) are still counted, by node. Real lines: loghub's OpenSSH and Linux
//! logs (logpai/loghub, research use, cite Zhu et al., ISSRE 2023; see shared/data/SOURCES.md).

mod common;

use common::data;
use quarry_detect::{Detector, RuleSet, Scratch};
use quarry_model::{Event, Fields, Kind, Source};
use quarry_parse::{decode_all, DecoderOptions, Format};
use std::collections::{BTreeMap, BTreeSet};

const BY_ADDRESS: &str = "SSH Brute Force From One Address";
const BY_NODE: &str = "SSH Brute Force Against A Node From Unknown Clients";
const LOGIN_AFTER: &str = "SSH Login Accepted After Brute Force";
const LOGIN_AFTER_ON_NODE: &str = "SSH Login Accepted On A Node Brute-Forced From Unknown Clients";

/// A correlation that fired: its title and group.
type Firing = (String, Vec<(String, String)>);

/// Syslog events of `text` (one line each).
fn parse(text: &str) -> Vec<Event> {
    decode_all(
        Format::Syslog,
        DecoderOptions::default(),
        text.as_bytes(),
        0,
    )
    .0
}

/// The event as Quarry stored it before its parser extracted `sshd.*` fields.
fn without_sshd_fields(mut ev: Event) -> Event {
    let mut f = Fields::new();
    for (k, v) in ev.fields.iter().filter(|(k, _)| !k.starts_with("sshd.")) {
        f.push(k, v.clone());
    }
    ev.fields = f;
    ev
}

/// Runs the built-in pack over `events` (syslog, in any order) and returns each correlation group that
/// fired, once, with how many times it fired.
fn correlate(events: &[Event]) -> BTreeMap<Firing, usize> {
    let d = Detector::new(&RuleSet::builtin());
    assert!(d.problems().is_empty(), "{:#?}", d.problems());
    let mut c = d.correlator(0).expect("the pack has correlations");
    let source = Source::of_kind(Kind::Syslog);
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    for ev in events {
        out.clear();
        d.detect(&source, ev, &mut scratch, &mut out);
        let results: Vec<_> = out.iter_mut().filter_map(|m| m.result.take()).collect();
        if !results.is_empty() {
            c.push(&source, ev, results, 0);
        }
    }
    let mut fired = BTreeMap::new();
    for f in c.release(d.field_table(), 0, true) {
        let body = f.result.as_correlation().expect("a correlation");
        let key = (f.result.header.rule_title.clone(), body.group_key.clone());
        *fired.entry(key).or_insert(0) += 1;
    }
    fired
}

fn titles(fired: &BTreeMap<Firing, usize>) -> BTreeSet<(&str, Vec<(&str, &str)>)> {
    fired
        .keys()
        .map(|(t, g)| {
            (
                t.as_str(),
                g.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            )
        })
        .collect()
}

/// `Failed password` lines: (second, node, address, user).
fn failures(attempts: &[(u32, &str, &str, &str)]) -> String {
    let mut s = String::new();
    for (i, (sec, node, addr, user)) in attempts.iter().enumerate() {
        let (m, sec) = (sec / 60, sec % 60);
        let invalid = if *user == "root" { "" } else { "invalid user " };
        s.push_str(&format!(
            "2026-03-01T10:{m:02}:{sec:02}Z {node} sshd[{}]: Failed password for {invalid}{user} from {addr} port {} ssh2\n",
            2000 + i,
            40000 + i
        ));
    }
    s
}

fn accepted(sec: u32, node: &str, addr: &str) -> String {
    format!(
        "2026-03-01T10:{:02}:{:02}Z {node} sshd[9999]: Accepted password for deploy from {addr} port 50000 ssh2\n",
        sec / 60,
        sec % 60
    )
}

#[test]
fn one_attacker_on_many_nodes_is_one_alert_for_its_address() {
    // 4 guesses on each of three nodes, 12 in 3 minutes: under the threshold on every node
    let mut attempts = Vec::new();
    for i in 0..12u32 {
        let node = ["node-1", "node-2", "node-3"][i as usize % 3];
        attempts.push((
            i * 15,
            node,
            "203.0.113.7",
            ["root", "admin", "oracle"][i as usize % 3],
        ));
    }
    let events = parse(&failures(&attempts));
    assert_eq!(events.len(), 12);
    let fired = correlate(&events);
    assert_eq!(
        titles(&fired),
        BTreeSet::from([(BY_ADDRESS, vec![("sshd.src_ip", "203.0.113.7")])]),
        "{fired:#?}"
    );
    // nine failures from the address, on the three nodes, are not enough
    let fired = correlate(&parse(&failures(&attempts[..9])));
    assert!(fired.is_empty(), "{fired:#?}");
}

#[test]
fn users_on_different_addresses_are_not_added_up() {
    // 12 failures on one node in 2 minutes from 12 addresses, then 9 from each of two addresses:
    // grouped by node this was a brute force; by address it is not
    let addrs: Vec<String> = (1..=12).map(|i| format!("10.0.0.{i}")).collect();
    let mut attempts: Vec<(u32, &str, &str, &str)> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (i as u32 * 10, "node-1", a.as_str(), "alice"))
        .collect();
    for i in 0..9u32 {
        attempts.push((130 + i * 5, "node-1", "198.51.100.1", "root"));
        attempts.push((131 + i * 5, "node-1", "2001:db8::1", "root"));
    }
    let fired = correlate(&parse(&failures(&attempts)));
    assert!(fired.is_empty(), "{fired:#?}");
    // a tenth from one of them within five minutes makes it a brute force, of that address only
    attempts.push((200, "node-2", "2001:db8::1", "root"));
    let fired = correlate(&parse(&failures(&attempts)));
    assert_eq!(
        titles(&fired),
        BTreeSet::from([(BY_ADDRESS, vec![("sshd.src_ip", "2001:db8::1")])])
    );
    // ... but not ten spread over more than five minutes
    attempts.pop();
    attempts.push((131 + 9 * 5 + 300, "node-2", "2001:db8::1", "root"));
    assert!(correlate(&parse(&failures(&attempts))).is_empty());
}

#[test]
fn login_after_brute_force_needs_the_same_address() {
    let attempts: Vec<(u32, &str, &str, &str)> = (0..10u32)
        .map(|i| (i * 6, "node-1", "203.0.113.7", "root"))
        .collect();
    let guesses = failures(&attempts);
    // a colleague logs in to the attacked node from the bastion: no login-after-brute-force
    let text = format!("{guesses}{}", accepted(120, "node-1", "10.0.0.5"));
    let fired = correlate(&parse(&text));
    assert_eq!(
        titles(&fired),
        BTreeSet::from([(BY_ADDRESS, vec![("sshd.src_ip", "203.0.113.7")])])
    );
    // the attacker logs in, to another node, 20 minutes later
    let text = format!("{guesses}{}", accepted(1260, "node-2", "203.0.113.7"));
    let fired = correlate(&parse(&text));
    let ip = vec![("sshd.src_ip", "203.0.113.7")];
    assert_eq!(
        titles(&fired),
        BTreeSet::from([(BY_ADDRESS, ip.clone()), (LOGIN_AFTER, ip)])
    );
    // a login before the guessing does not count
    let text = format!(
        "{}{}",
        accepted(0, "node-2", "203.0.113.7"),
        failures(
            &attempts
                .iter()
                .map(|a| (a.0 + 60, a.1, a.2, a.3))
                .collect::<Vec<_>>()
        )
    );
    let fired = correlate(&parse(&text));
    assert!(!titles(&fired).iter().any(|(t, _)| *t == LOGIN_AFTER));
}

#[test]
fn failures_without_a_client_address_fall_back_to_the_node() {
    // events stored before the parser extracted sshd.* fields: 10 on node-1, 10 on node-2 from as many
    // addresses, 5 and 5 on node-3 and node-4
    let mut attempts = Vec::new();
    let addrs: Vec<String> = (1..=30).map(|i| format!("192.0.2.{i}")).collect();
    for i in 0..10u32 {
        attempts.push((i * 10, "node-1", addrs[i as usize].as_str(), "root"));
        attempts.push((
            i * 10 + 1,
            "node-2",
            addrs[10 + i as usize].as_str(),
            "admin",
        ));
    }
    for i in 0..5u32 {
        attempts.push((
            i * 10 + 2,
            "node-3",
            addrs[20 + i as usize].as_str(),
            "root",
        ));
        attempts.push((
            i * 10 + 3,
            "node-4",
            addrs[25 + i as usize].as_str(),
            "root",
        ));
    }
    let text = format!(
        "{}{}",
        failures(&attempts),
        accepted(600, "node-1", "10.0.0.5")
    );
    let old: Vec<Event> = parse(&text).into_iter().map(without_sshd_fields).collect();
    assert!(old.iter().all(|e| e.fields.get("sshd.event").is_none()));
    let fired = correlate(&old);
    let node = |n: &'static str| vec![("hostname", n)];
    assert_eq!(
        titles(&fired),
        BTreeSet::from([
            (BY_NODE, node("node-1")),
            (BY_NODE, node("node-2")),
            (LOGIN_AFTER_ON_NODE, node("node-1")),
        ]),
        "{fired:#?}"
    );
    // the same lines as parsed now: every address is under the threshold, nothing fires
    assert!(correlate(&parse(&text)).is_empty());
    // PAM lines of the old sshd(pam_unix) tag with an empty rhost have no client either
    let pam: String = (0..10)
        .map(|i| format!("2026-03-01T11:00:{i:02}Z node-9 sshd(pam_unix)[{i}]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost= \n"))
        .collect();
    let fired = correlate(&parse(&pam));
    assert_eq!(titles(&fired), BTreeSet::from([(BY_NODE, node("node-9"))]));
}

/// The clients with ten failures within five minutes, counted straight from the text: the failure lines
/// the rule reads, the client as the last word after ` from ` or PAM's `rhost=`.
fn expected_brute_forcers(events: &[Event]) -> BTreeSet<String> {
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for ev in events {
        let app = ev
            .fields
            .get("appname")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let msg = ev
            .fields
            .get("message")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let client = if app == "sshd"
            && [
                "Failed password for ",
                "Failed none for ",
                "Failed keyboard-interactive/pam for ",
            ]
            .iter()
            .any(|k| msg.contains(k))
        {
            msg.rsplit(" from ")
                .next()
                .and_then(|t| t.split(' ').next())
        } else if app == "sshd(pam_unix)" && msg.contains("authentication failure;") {
            msg.split("rhost=").nth(1).and_then(|t| t.split(' ').next())
        } else {
            None
        };
        if let Some(c) = client.filter(|c| !c.is_empty()) {
            times
                .entry(c.to_string())
                .or_default()
                .push(ev.ts.div_euclid(1_000_000_000));
        }
    }
    times
        .into_iter()
        .filter(|(_, t)| {
            let mut t = t.clone();
            t.sort();
            t.windows(10).any(|w| w[9] - w[0] <= 300)
        })
        .map(|(c, _)| c)
        .collect()
}

#[test]
fn loghub_brute_forcers_are_alerted_once_per_address() {
    for system in ["OpenSSH", "Linux"] {
        let bytes =
            std::fs::read(data(&format!("node_logs/loghub/{system}/{system}_2k.log"))).unwrap();
        let events = decode_all(Format::Syslog, DecoderOptions::default(), &bytes, 0).0;
        let want = expected_brute_forcers(&events);
        assert!(want.len() >= 3, "{system}: {want:?}");
        let fired = correlate(&events);
        let mut got = BTreeSet::new();
        for (title, group) in fired.keys() {
            match title.as_str() {
                BY_ADDRESS => {
                    assert_eq!(group.len(), 1, "{group:?}");
                    got.insert(group[0].1.clone());
                }
                // every failure in these logs has its client; no login followed a brute force
                t => panic!("{system}: unexpected {t} {group:?}"),
            }
        }
        assert_eq!(got, want, "{system}");
        // PAM's host names group as sshd.src_host, addresses as sshd.src_ip
        if system == "Linux" {
            assert!(fired.keys().any(|(_, g)| g[0]
                == (
                    "sshd.src_host".to_string(),
                    "n219076184117.netvigator.com".to_string()
                )));
            assert!(fired.keys().any(|(_, g)| g[0].0 == "sshd.src_ip"));
        }
    }
}
