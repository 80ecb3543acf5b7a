//! Matching events against loaded indicators: [`Intel`]'s lookups (addresses and blocks, domains and
//! their parents, hashes), the per-source checks, text scanning, and [`scan_ips`].

use super::load::{mask_v4, mask_v6, parse_ip, IntelBuilder};
use super::{Indicator, IntelError, IntelFamily, IntelHit, IntelProblem, IntelStats};
use aho_corasick::AhoCorasick;
use quarry_model::{Event, Kind, Source};
use rustc_hash::FxHashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

// ------------------------------------------------------------------------------------------------
// Matching

struct TextMatcher {
    ac: AhoCorasick,
    /// Pattern id → indicator.
    pats: Vec<Arc<Indicator>>,
}

/// Loaded indicators, ready to match events.
pub struct Intel {
    /// Per prefix length present, longest first: network → indicator.
    pub(super) v4: Vec<(u8, FxHashMap<u32, Arc<Indicator>>)>,
    /// A bit per IPv4 /16 that holds some indicator: most misses cost one bit test.
    v4_any: Box<[u64]>,
    v6: Vec<(u8, FxHashMap<u128, Arc<Indicator>>)>,
    domains: FxHashMap<Box<str>, Arc<Indicator>>,
    hashes: FxHashMap<Box<str>, Arc<Indicator>>,
    /// Domains and hashes, for text.
    text: Option<TextMatcher>,
    stats: IntelStats,
    problems: Vec<IntelProblem>,
}

impl fmt::Debug for Intel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intel")
            .field("stats", &self.stats)
            .field("problems", &self.problems.len())
            .finish()
    }
}

impl Intel {
    /// The matcher over what an [`IntelBuilder`] loaded: prefix lengths ordered longest first, the
    /// IPv4 /16 bitmap, and one Aho-Corasick automaton over the domains and hashes.
    pub(super) fn from_parts(
        v4: FxHashMap<u8, FxHashMap<u32, Arc<Indicator>>>,
        v6: FxHashMap<u8, FxHashMap<u128, Arc<Indicator>>>,
        domains: FxHashMap<Box<str>, Arc<Indicator>>,
        hashes: FxHashMap<Box<str>, Arc<Indicator>>,
        stats: IntelStats,
        problems: Vec<IntelProblem>,
    ) -> Result<Intel, IntelError> {
        let mut v4: Vec<_> = v4.into_iter().collect();
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut v6: Vec<_> = v6.into_iter().collect();
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut pats: Vec<Arc<Indicator>> = Vec::new();
        pats.extend(domains.values().cloned());
        pats.extend(hashes.values().cloned());
        // Fixed order, so that matches come out the same on every run.
        pats.sort_by(|a, b| a.value.cmp(&b.value));
        let text = if pats.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(pats.iter().map(|p| p.value.as_bytes()))
                .map_err(|e| IntelError::Matcher(e.to_string()))?;
            Some(TextMatcher { ac, pats })
        };
        // One bit per /16 holding any IPv4 indicator (blocks are /8 or narrower: at most 256 bits each).
        let mut v4_any = vec![0u64; 1024].into_boxed_slice();
        for (len, m) in &v4 {
            let span = 1usize << 16usize.saturating_sub(*len as usize);
            for net in m.keys() {
                let first = (*net >> 16) as usize;
                for b in first..(first + span).min(65_536) {
                    v4_any[b / 64] |= 1 << (b % 64);
                }
            }
        }
        Ok(Intel {
            v4,
            v4_any,
            v6,
            domains,
            hashes,
            text,
            stats,
            problems,
        })
    }

    /// Loads every feed file or folder of `paths` (see [`IntelBuilder::load_path`]) at the current time.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Intel, IntelError> {
        let mut b = IntelBuilder::new();
        for p in paths {
            b.load_path(p.as_ref())?;
        }
        b.build()
    }

    /// What loading did.
    pub fn stats(&self) -> &IntelStats {
        &self.stats
    }

    /// Problems found while loading (at most [`MAX_PROBLEMS`](super::MAX_PROBLEMS)).
    pub fn problems(&self) -> &[IntelProblem] {
        &self.problems
    }

    /// True when no indicator loaded.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.text.is_none()
    }

    /// The most specific address or block indicator holding `ip`.
    pub fn lookup_ip(&self, ip: IpAddr) -> Option<&Arc<Indicator>> {
        match ip {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let b16 = (bits >> 16) as usize;
                if self.v4_any[b16 / 64] & (1 << (b16 % 64)) == 0 {
                    return None;
                }
                self.v4
                    .iter()
                    .find_map(|(len, m)| m.get(&(bits & mask_v4(*len))))
            }
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.lookup_ip(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(a);
                    self.v6
                        .iter()
                        .find_map(|(len, m)| m.get(&(bits & mask_v6(*len))))
                }
            },
        }
    }

    /// The domain indicator for `host` or its closest parent domain (case and a trailing dot ignored).
    pub fn lookup_domain(&self, host: &str) -> Option<&Arc<Indicator>> {
        if self.domains.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.len() > 253 {
            return None;
        }
        let mut buf = [0u8; 253];
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host.as_bytes());
        lower.make_ascii_lowercase();
        let mut s = std::str::from_utf8(lower).ok()?;
        loop {
            if let Some(i) = self.domains.get(s) {
                return Some(i);
            }
            s = &s[s.find('.')? + 1..];
        }
    }

    /// The hash indicator for `h` (any case).
    pub fn lookup_hash(&self, h: &str) -> Option<&Arc<Indicator>> {
        if self.hashes.is_empty() || !matches!(h.len(), 32 | 40 | 64) {
            return None;
        }
        let mut buf = [0u8; 64];
        let lower = &mut buf[..h.len()];
        lower.copy_from_slice(h.as_bytes());
        lower.make_ascii_lowercase();
        self.hashes.get(std::str::from_utf8(lower).ok()?)
    }

    fn has_ips(&self) -> bool {
        !self.v4.is_empty() || !self.v6.is_empty()
    }

    /// Appends to `out` the indicators found in `ev` (read as `source.kind` says, see the module
    /// documentation); one hit per indicator, field and value.
    pub fn check(&self, source: &Source, ev: &Event, out: &mut Vec<IntelHit>) {
        let start = out.len();
        match source.kind {
            Kind::Audit => {
                if !self.has_ips() {
                    return;
                }
                // Array elements are flattened next to each other: stop after the run.
                let mut seen = false;
                for (path, v) in ev.fields.iter() {
                    let in_run = path
                        .strip_prefix("sourceIPs")
                        .is_some_and(|r| r.is_empty() || r.starts_with('.'));
                    if in_run {
                        seen = true;
                        if let Some(s) = v.as_str() {
                            self.check_ip(path, s, start, out);
                        }
                    } else if seen {
                        break;
                    }
                }
            }
            Kind::CloudTrail => {
                if let Some(s) = ev.fields.get("sourceIPAddress").and_then(|v| v.as_str()) {
                    match parse_ip(s) {
                        Some(ip) => {
                            if let Some(ind) = self.lookup_ip(ip) {
                                push_hit(out, start, ind, "sourceIPAddress", s);
                            }
                        }
                        None => {
                            if let Some(ind) = self.lookup_domain(s) {
                                push_hit(out, start, ind, "sourceIPAddress", s);
                            }
                        }
                    }
                }
            }
            Kind::VpcFlow => {
                if !self.has_ips() {
                    return;
                }
                for (path, v) in ev.fields.iter() {
                    if matches!(path, "srcAddr" | "dstAddr" | "pktSrcAddr" | "pktDstAddr") {
                        if let Some(s) = v.as_str() {
                            self.check_ip(path, s, start, out);
                        }
                    }
                }
            }
            Kind::Syslog => match ev.fields.get("message").and_then(|v| v.as_str()) {
                Some(m) => self.check_text("message", m, start, out),
                None => self.check_text("@message", ev.message(), start, out),
            },
            Kind::Container | Kind::Json | Kind::Text => {
                self.check_text("@message", ev.message(), start, out)
            }
            // Quarry's own access records name its users, not the attacker's infrastructure.
            Kind::Access => {}
        }
    }

    fn check_ip(&self, field: &str, s: &str, start: usize, out: &mut Vec<IntelHit>) {
        if let Some(ind) = parse_ip(s).and_then(|ip| self.lookup_ip(ip)) {
            push_hit(out, start, ind, field, s);
        }
    }

    fn check_text(&self, field: &str, text: &str, start: usize, out: &mut Vec<IntelHit>) {
        if self.has_ips() {
            scan_ips(text, |ip, found| {
                if let Some(ind) = self.lookup_ip(ip) {
                    push_hit(out, start, ind, field, found);
                }
            });
        }
        let Some(tm) = &self.text else { return };
        let b = text.as_bytes();
        for m in tm.ac.find_overlapping_iter(text) {
            let ind = &tm.pats[m.pattern().as_usize()];
            let (s, e) = (m.start(), m.end());
            match ind.kind.family() {
                IntelFamily::Domain => {
                    if domain_bounds(b, s, e) {
                        // Report the whole host name the domain ends.
                        let mut from = s;
                        while from > 0 && is_host_byte(b[from - 1]) {
                            from -= 1;
                        }
                        let from = if b[from] == b'.' { from + 1 } else { from };
                        push_hit(out, start, ind, field, &text[from..e]);
                    }
                }
                IntelFamily::Hash => {
                    let word = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_alphanumeric());
                    if (s == 0 || !word(s - 1)) && !word(e) {
                        push_hit(out, start, ind, field, &text[s..e]);
                    }
                }
                IntelFamily::Ip => {}
            }
        }
    }
}

fn is_host_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.'
}

/// Whether `b[s..e]` (a domain indicator's text) stands as a domain or a parent domain: not preceded by
/// a label character (a dot is fine: a subdomain), not followed by one, nor by a dot and more labels.
fn domain_bounds(b: &[u8], s: usize, e: usize) -> bool {
    let label = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    if s > 0 && label(b[s - 1]) {
        return false;
    }
    match b.get(e) {
        None => true,
        Some(&c) if label(c) => false,
        Some(b'.') => !b.get(e + 1).is_some_and(|&c| label(c)),
        Some(_) => true,
    }
}

fn push_hit(out: &mut Vec<IntelHit>, start: usize, ind: &Arc<Indicator>, field: &str, value: &str) {
    if out[start..]
        .iter()
        .any(|h| Arc::ptr_eq(&h.indicator, ind) && h.field == field && h.value == value)
    {
        return;
    }
    out.push(IntelHit {
        indicator: ind.clone(),
        field: field.to_string(),
        value: value.to_string(),
    });
}

/// Calls `f` with every IPv4 or IPv6 address standing alone in `text` (with the text it was read from):
/// `from 203.0.113.66 port 22`, `[2001:db8::1]:443`, `10.0.0.1:8080`, `::ffff:10.0.0.1`. Dotted runs
/// inside words or longer dotted numbers (`v1.2.3.4`, `1.2.3.4.5`) are not addresses. Allocates nothing.
pub fn scan_ips(text: &str, mut f: impl FnMut(IpAddr, &str)) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i < n {
        let c = b[i];
        if !(c.is_ascii_hexdigit() || c == b':') {
            i += 1;
            continue;
        }
        let start = i;
        let left_ok = start == 0
            || !(b[start - 1].is_ascii_alphanumeric() || matches!(b[start - 1], b'_' | b'.'));
        let (mut dots, mut colons, mut letters) = (0u32, 0u32, false);
        while i < n {
            match b[i] {
                b'0'..=b'9' => {}
                b'.' => dots += 1,
                b':' => colons += 1,
                c if c.is_ascii_hexdigit() => letters = true,
                _ => break,
            }
            i += 1;
        }
        let right_ok = i == n || !(b[i].is_ascii_alphanumeric() || b[i] == b'_');
        if !left_ok || !right_ok || (dots == 0 && colons < 2) {
            continue;
        }
        // A sentence may end right after an address.
        let mut end = i;
        while end > start && b[end - 1] == b'.' {
            end -= 1;
            dots -= 1;
        }
        let run = &text[start..end];
        if colons >= 2 {
            let v6 = run
                .strip_suffix(':')
                .filter(|r| !r.ends_with(':'))
                .unwrap_or(run);
            if let Ok(a) = v6.parse::<Ipv6Addr>() {
                let ip = match a.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(a),
                };
                f(ip, v6);
            }
        } else if dots == 3 && !letters {
            // `a.b.c.d` or `a.b.c.d:port`.
            let v4 = run.split_once(':').map_or(run, |(a, _)| a);
            if let Ok(a) = v4.parse::<Ipv4Addr>() {
                f(IpAddr::V4(a), v4);
            }
        }
    }
}
