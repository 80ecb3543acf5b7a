//! The built-in detectors: cheap byte-level triggers, then a hand-written validator on each candidate.
//!
//! Every function here works on bytes and only starts or ends a match at an ASCII byte (or at the end of the
//! text), so every span it reports lies on UTF-8 character boundaries of the `&str` it was given.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};
use memchr::memmem;

/// The built-in detectors, in priority order (on a tie between two matches the earlier one wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Ssn,
    Card,
    Email,
    Jwt,
    Bearer,
    AwsKey,
    PrivateKey,
}

/// Every built-in detector with its configuration name.
pub(crate) const BUILTINS: [(Builtin, &str); 7] = [
    (Builtin::Ssn, "ssn"),
    (Builtin::Card, "card"),
    (Builtin::Email, "email"),
    (Builtin::Jwt, "jwt"),
    (Builtin::Bearer, "bearer"),
    (Builtin::AwsKey, "aws_key"),
    (Builtin::PrivateKey, "private_key"),
];

/// What an Aho-Corasick trigger literal stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Jwt,
    Bearer,
    Basic,
    AwsId,
    AwsSecret,
    Pem,
}

/// The enabled built-in detectors, ready to scan.
pub(crate) struct Scanner {
    ssn: bool,
    card: bool,
    email: bool,
    /// One automaton over the trigger literals of the enabled literal-triggered detectors.
    ac: Option<AhoCorasick>,
    /// Trigger of each automaton pattern, by pattern id.
    triggers: Vec<Trigger>,
    pem_end: memmem::Finder<'static>,
}

impl Scanner {
    /// Prepares the scanner for the detectors whose flag is set.
    pub(crate) fn new(enabled: impl Fn(Builtin) -> bool) -> Scanner {
        // Case-sensitive literals keep the automaton's SIMD (Teddy) prefilter; case variants are listed instead.
        let mut lits: Vec<(&'static str, Trigger)> = Vec::new();
        if enabled(Builtin::Jwt) {
            lits.push(("eyJ", Trigger::Jwt));
        }
        if enabled(Builtin::Bearer) {
            lits.extend([
                ("earer", Trigger::Bearer),
                ("EARER", Trigger::Bearer),
                ("asic", Trigger::Basic),
                ("ASIC", Trigger::Basic),
            ]);
        }
        if enabled(Builtin::AwsKey) {
            lits.extend([
                ("AKIA", Trigger::AwsId),
                ("ASIA", Trigger::AwsId),
                ("ABIA", Trigger::AwsId),
                ("ACCA", Trigger::AwsId),
                ("ecret", Trigger::AwsSecret),
                ("ECRET", Trigger::AwsSecret),
            ]);
        }
        if enabled(Builtin::PrivateKey) {
            lits.push(("-----BEGIN", Trigger::Pem));
        }
        let ac = if lits.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .kind(Some(AhoCorasickKind::DFA))
                .build(lits.iter().map(|(l, _)| l))
                .ok()
                .or_else(|| AhoCorasick::new(lits.iter().map(|(l, _)| l)).ok())
        };
        Scanner {
            ssn: enabled(Builtin::Ssn),
            card: enabled(Builtin::Card),
            email: enabled(Builtin::Email),
            ac,
            triggers: lits.into_iter().map(|(_, t)| t).collect(),
            pem_end: memmem::Finder::new(b"-----END ").into_owned(),
        }
    }

    /// Reports every built-in match in `text` as `(start, end, detector)`; `emit` returns false to stop early.
    pub(crate) fn scan(
        &self,
        text: &str,
        emit: &mut dyn FnMut(usize, usize, Builtin) -> bool,
    ) -> bool {
        let b = text.as_bytes();
        if (self.ssn || self.card) && !scan_digits(b, self.ssn, self.card, emit) {
            return false;
        }
        if self.email {
            for at in memchr::memchr2_iter(b'@', b'%', b) {
                if let Some((s, e)) = email_at(b, at) {
                    if !emit(s, e, Builtin::Email) {
                        return false;
                    }
                }
            }
        }
        if let Some(ac) = &self.ac {
            let mut pos = 0;
            while pos < b.len() {
                let Some(m) = ac.find(Input::new(b).range(pos..)) else {
                    break;
                };
                let t = m.start();
                let found = match self.triggers[m.pattern().as_usize()] {
                    Trigger::Jwt => jwt_at(b, t).map(|r| (r, Builtin::Jwt)),
                    Trigger::Bearer => bearer_at(b, t).map(|r| (r, Builtin::Bearer)),
                    Trigger::Basic => basic_at(b, t).map(|r| (r, Builtin::Bearer)),
                    Trigger::AwsId => aws_id_at(b, t).map(|r| (r, Builtin::AwsKey)),
                    Trigger::AwsSecret => aws_secret_at(b, t).map(|r| (r, Builtin::AwsKey)),
                    Trigger::Pem => self.pem_at(b, t).map(|r| (r, Builtin::PrivateKey)),
                };
                pos = m.end();
                if let Some(((s, e), det)) = found {
                    if !emit(s, e, det) {
                        return false;
                    }
                    // Nothing inside a key block needs a look, and skipping it keeps many BEGINs linear.
                    if det == Builtin::PrivateKey {
                        pos = pos.max(e);
                    }
                }
            }
        }
        true
    }

    /// A PEM private key block starting at the `-----BEGIN` at `t`.
    ///
    /// It ends after the matching `-----END <label>-----`; without one, at the first `"` (so a JSON string
    /// keeps its closing quote) or at the end of the text.
    fn pem_at(&self, b: &[u8], t: usize) -> Option<(usize, usize)> {
        let mut p = t + b"-----BEGIN".len();
        if b.get(p) != Some(&b' ') {
            return None;
        }
        p += 1;
        let label_start = p;
        while p < b.len()
            && p - label_start <= 64
            && (b[p].is_ascii_uppercase() || b[p].is_ascii_digit() || b[p] == b' ')
        {
            p += 1;
        }
        let label = &b[label_start..p];
        if !b[p..].starts_with(b"-----") || memmem::find(label, b"PRIVATE KEY").is_none() {
            return None;
        }
        p += 5;
        let limit = memchr::memchr(b'"', &b[p..]).map_or(b.len(), |q| p + q);
        let body = &b[p..limit];
        for q in self.pem_end.find_iter(body) {
            let rest = &body[q + b"-----END ".len()..];
            if rest.starts_with(label) && rest[label.len()..].starts_with(b"-----") {
                return Some((t, p + q + b"-----END ".len() + label.len() + 5));
            }
        }
        Some((t, limit))
    }
}

/// ASCII letter, digit or underscore.
#[inline]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// True when a word byte sits right before `pos`, gluing what starts there to a longer token.
///
/// A JSON escape such as `\n` or `\t` before `pos` is a separator, not part of a word.
#[inline]
fn word_before(b: &[u8], pos: usize) -> bool {
    if pos == 0 {
        return false;
    }
    let c = b[pos - 1];
    is_word(c)
        && !(matches!(c, b'n' | b'r' | b't' | b'b' | b'f') && pos >= 2 && b[pos - 2] == b'\\')
}

// ---------------------------------------------------------------------------------------------------------
// Digit runs: SSNs and payment cards.

/// Shortest candidate in bytes: an SSN (`ddd-dd-dddd`); a card has at least 13 digits.
const MIN_CHAIN: usize = 11;

/// A space or dash, the separators allowed inside a card number or SSN.
#[inline]
fn is_sep(c: u8) -> bool {
    c == b' ' || c == b'-'
}

/// True when `b[p]` belongs to a chain: a digit, or a single separator between two digits.
#[inline]
fn in_chain(b: &[u8], p: usize) -> bool {
    let c = b[p];
    c.is_ascii_digit()
        || (is_sep(c)
            && p > 0
            && b[p - 1].is_ascii_digit()
            && b.get(p + 1).is_some_and(u8::is_ascii_digit))
}

/// Finds SSNs and card numbers: a skip scan for chains (digit groups joined by single spaces or dashes) at
/// least [`MIN_CHAIN`] bytes long.
///
/// The scan looks at every `MIN_CHAIN`-th byte only: if that byte cannot be in a chain, no long enough chain
/// covers any byte before it, so the whole stretch is skipped without a look.
fn scan_digits(
    b: &[u8],
    ssn: bool,
    card: bool,
    emit: &mut dyn FnMut(usize, usize, Builtin) -> bool,
) -> bool {
    let n = b.len();
    let mut i = 0;
    while i + MIN_CHAIN <= n {
        let p = i + MIN_CHAIN - 1;
        if !in_chain(b, p) {
            i = p + 1;
            continue;
        }
        // b[i - 1], if any, is in no chain, so this chain cannot start before i.
        let mut s = p;
        while s > i && in_chain(b, s - 1) {
            s -= 1;
        }
        let mut e = p + 1;
        while e < n && in_chain(b, e) {
            e += 1;
        }
        if e - s >= MIN_CHAIN && !chain(b, s, e, ssn, card, emit) {
            return false;
        }
        // b[e] is in no chain.
        i = e + 1;
    }
    true
}

/// True when the number starting at `pos` is not glued to a token before it (a word, a decimal point after a
/// digit, a hyphen after a word).
fn number_starts(b: &[u8], pos: usize) -> bool {
    if word_before(b, pos) {
        return false;
    }
    match pos.checked_sub(2).map(|q| (b[q], b[pos - 1])) {
        Some((before, b'.' | b'-')) => !is_word(before),
        _ => true,
    }
}

/// True when the number ending at `pos` is not glued to a token after it.
fn number_ends(b: &[u8], pos: usize) -> bool {
    match b.get(pos) {
        None => true,
        Some(&c) if is_word(c) => false,
        Some(b'.' | b'-') => !b.get(pos + 1).is_some_and(|&c| is_word(c)),
        Some(_) => true,
    }
}

/// Looks for cards and SSNs in one chain `b[cs..ce]` of digit groups joined by single spaces or dashes.
///
/// A match may be the whole chain or a run of its groups that is cut from the rest at spaces (never at
/// dashes, which would split a longer identifier such as a UUID).
fn chain(
    b: &[u8],
    cs: usize,
    ce: usize,
    ssn: bool,
    card: bool,
    emit: &mut dyn FnMut(usize, usize, Builtin) -> bool,
) -> bool {
    let chain_starts = number_starts(b, cs);
    let chain_ends = number_ends(b, ce);
    let ends_ok = |p: usize| if p == ce { chain_ends } else { b[p] == b' ' };
    let mut g = cs;
    while g < ce {
        let starts_ok = if g == cs {
            chain_starts
        } else {
            b[g - 1] == b' '
        };
        let mut next = None;
        if starts_ok {
            if card {
                if let Some(end) = card_from(b, g, ce, &ends_ok) {
                    if !emit(g, end, Builtin::Card) {
                        return false;
                    }
                    next = Some(end);
                }
            }
            if next.is_none() && ssn && g + 11 <= ce && ends_ok(g + 11) && is_ssn(&b[g..g + 11]) {
                if !emit(g, g + 11, Builtin::Ssn) {
                    return false;
                }
                next = Some(g + 11);
            }
        }
        // Move to the start of the next group.
        let mut p = next.unwrap_or(g);
        while p < ce && b[p].is_ascii_digit() {
            p += 1;
        }
        g = p + 1;
    }
    true
}

/// The end of the longest valid card number made of whole groups starting at group start `g`.
fn card_from(b: &[u8], g: usize, ce: usize, ends_ok: &dyn Fn(usize) -> bool) -> Option<usize> {
    let mut digits = [0u8; 19];
    let mut total = 0usize;
    let mut lens = [0usize; 8];
    let mut groups = 0usize;
    let mut sep = 0u8;
    let mut p = g;
    let mut best = None;
    loop {
        let gs = p;
        while p < ce && b[p].is_ascii_digit() {
            if total < 19 {
                digits[total] = b[p] - b'0';
            }
            total += 1;
            p += 1;
        }
        if total > 19 || groups == lens.len() {
            break;
        }
        lens[groups] = p - gs;
        groups += 1;
        if total >= 13 && card_layout(&lens[..groups]) && ends_ok(p) && valid_card(&digits[..total])
        {
            best = Some(p);
        }
        if p >= ce {
            break;
        }
        if sep == 0 {
            sep = b[p];
        } else if b[p] != sep {
            break;
        }
        p += 1;
    }
    best
}

/// Group lengths as cards are printed: one group, groups of 4 with a last group of 1-4, Amex/Diners 4-6-5 and
/// 4-6-4, 13-digit 4-3-3-3 and 4-4-5.
fn card_layout(lens: &[usize]) -> bool {
    match lens {
        [_] | [4, 6, 5] | [4, 6, 4] | [4, 3, 3, 3] | [4, 4, 5] => true,
        [fours @ .., last] => fours.iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

/// Issuer prefix and length plausible for a payment card, and the Luhn checksum holds.
fn valid_card(d: &[u8]) -> bool {
    let len = d.len();
    let p2 = d[0] as u32 * 10 + d[1] as u32;
    let p3 = p2 * 10 + d[2] as u32;
    let p4 = p3 * 10 + d[3] as u32;
    let brand = match d[0] {
        4 => matches!(len, 13 | 16 | 19),              // Visa
        2 => (2221..=2720).contains(&p4) && len == 16, // Mastercard 2-series
        5 if (51..=55).contains(&p2) => len == 16,     // Mastercard
        5 => p2 == 50 || p2 >= 56,                     // Maestro
        3 if p2 == 34 || p2 == 37 => len == 15,        // American Express
        3 if (3528..=3589).contains(&p4) => len >= 16, // JCB
        3 => p2 == 36 || p2 == 38 || p2 == 39 || (300..=305).contains(&p3) || p3 == 309, // Diners Club
        6 => true, // Discover, UnionPay, Maestro, RuPay
        _ => false,
    };
    brand && luhn(d)
}

/// The Luhn (mod 10) checksum over decimal digits.
pub(crate) fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let x = x as u32;
        sum += if i % 2 == 1 {
            let y = x * 2;
            if y > 9 {
                y - 9
            } else {
                y
            }
        } else {
            x
        };
    }
    sum.is_multiple_of(10)
}

/// `AAA-GG-SSSS` with an area other than 000, 666 and 9xx, a group other than 00 and a serial other than 0000.
fn is_ssn(s: &[u8]) -> bool {
    let shape = s.len() == 11
        && s.iter().enumerate().all(|(i, &c)| {
            if i == 3 || i == 6 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return false;
    }
    let area = &s[0..3];
    area != b"000" && area != b"666" && area[0] != b'9' && &s[4..6] != b"00" && &s[7..11] != b"0000"
}

// ---------------------------------------------------------------------------------------------------------
// E-mail.

/// Bytes allowed in the local part of an address (the common subset of RFC 5322's atext, plus dots).
#[inline]
fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// The address around the `@` (or URL-encoded `%40`) at `at`: a local part of 1-64 bytes and a domain of at
/// least two labels whose last label (the top-level domain) has only letters, at least two.
fn email_at(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let sign = if b[at] == b'@' {
        1
    } else if b.get(at + 1..at + 3) == Some(b"40") {
        3
    } else {
        return None;
    };
    let mut s = at;
    while s > 0 && is_local(b[s - 1]) {
        s -= 1;
        if at - s > 64 {
            return None;
        }
    }
    while s < at && b[s] == b'.' {
        s += 1;
    }
    if s == at || b[at - 1] == b'.' {
        return None;
    }
    let mut p = at + sign;
    let mut labels = 0;
    let mut tld_alpha;
    loop {
        let ls = p;
        while p < b.len() && (b[p].is_ascii_alphanumeric() || b[p] == b'-') {
            p += 1;
        }
        let label = &b[ls..p];
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return None;
        }
        labels += 1;
        tld_alpha = label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic);
        if p + 1 < b.len() && b[p] == b'.' && b[p + 1].is_ascii_alphanumeric() && p - at < 253 {
            p += 1;
            continue;
        }
        break;
    }
    (labels >= 2 && tld_alpha).then_some((s, p))
}

// ---------------------------------------------------------------------------------------------------------
// Tokens: JWT, bearer, basic.

/// Bytes of the base64url alphabet.
#[inline]
fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Length of the run of bytes satisfying `f` from `p`.
#[inline]
fn run(b: &[u8], p: usize, f: impl Fn(u8) -> bool) -> usize {
    b.get(p..)
        .map_or(0, |r| r.iter().take_while(|&&c| f(c)).count())
}

/// A JSON Web Token at the `eyJ` at `t`: header (10+ bytes), payload (3+), signature (empty or 16+) in
/// base64url, joined by dots; further dot-joined segments (JWE) are included.
fn jwt_at(b: &[u8], t: usize) -> Option<(usize, usize)> {
    // A base64url byte before (other than the letter of a JSON escape such as `\n`): the middle of something.
    if t > 0 && is_b64url(b[t - 1]) && (b[t - 1] == b'-' || word_before(b, t)) {
        return None;
    }
    let h = run(b, t, is_b64url);
    let mut p = t + h;
    if h < 10 || b.get(p) != Some(&b'.') {
        return None;
    }
    let pl = run(b, p + 1, is_b64url);
    p += 1 + pl;
    if pl < 3 || b.get(p) != Some(&b'.') {
        return None;
    }
    let sig = run(b, p + 1, is_b64url);
    if sig != 0 && sig < 16 {
        return None;
    }
    p += 1 + sig;
    while b.get(p) == Some(&b'.') {
        let more = run(b, p + 1, is_b64url);
        if more == 0 {
            break;
        }
        p += 1 + more;
    }
    Some((t, p))
}

/// Bytes of an RFC 6750 bearer token (before its trailing `=` padding).
#[inline]
fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// Where the credential after a keyword starts: the keyword's tail (`earer` or `asic`, `tail_len` bytes)
/// matched at `t`, after a `b` or `B` on a word boundary, and is followed by 1-16 spaces or tabs.
fn after_keyword(b: &[u8], t: usize, tail_len: usize) -> Option<usize> {
    if t == 0 || !matches!(b[t - 1], b'b' | b'B') || word_before(b, t - 1) {
        return None;
    }
    let p = t + tail_len;
    let spaces = run(b, p, |c| c == b' ' || c == b'\t');
    (spaces > 0 && spaces <= 16).then_some(p + spaces)
}

/// The token after `bearer` (any case of the first letter, the rest all lower or all upper case).
///
/// The token must be 8+ bytes with a digit or symbol, or 20+ bytes, so prose such as "bearer authentication"
/// is not taken for a token.
fn bearer_at(b: &[u8], t: usize) -> Option<(usize, usize)> {
    let s = after_keyword(b, t, 5)?;
    let n = run(b, s, is_token);
    let pad = run(b, s + n, |c| c == b'=');
    let tok = &b[s..s + n];
    let symbolic = tok.iter().any(|c| !c.is_ascii_alphabetic());
    ((n >= 8 && symbolic) || n >= 20).then_some((s, s + n + pad))
}

/// The credentials after `basic`: base64 that decodes to bytes containing `:` (`user:password`).
fn basic_at(b: &[u8], t: usize) -> Option<(usize, usize)> {
    let s = after_keyword(b, t, 4)?;
    let n = run(b, s, |c| {
        c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
    });
    let pad = run(b, s + n, |c| c == b'=');
    let e = s + n + pad;
    if n < 4
        || pad > 2
        || (n + pad) % 4 == 1
        || b.get(e).is_some_and(|&c| is_b64url(c) || c == b'.')
    {
        return None;
    }
    base64_has_colon(&b[s..s + n]).then_some((s, e))
}

/// Decodes standard base64 (no padding given) and tells whether the result contains a `:`.
fn base64_has_colon(text: &[u8]) -> bool {
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if (acc >> bits) & 0xff == b':' as u32 {
                return true;
            }
            acc &= (1 << bits) - 1;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------------------
// AWS.

/// An access key id at `t`: `AKIA`/`ASIA`/`ABIA`/`ACCA` and 16 upper-case letters or digits, standing alone.
fn aws_id_at(b: &[u8], t: usize) -> Option<(usize, usize)> {
    let e = t + 20;
    if word_before(b, t)
        || e > b.len()
        || !b[t + 4..e]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return None;
    }
    (!b.get(e).is_some_and(|&c| is_word(c))).then_some((t, e))
}

/// Base64 bytes of a secret access key.
#[inline]
fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

/// The 40-byte value of a labelled secret access key, the label containing the `secret` whose tail is at `t`.
///
/// Labels, compared without case, `_` and `-`: `...secretaccesskey` (`aws_secret_access_key`,
/// `SecretAccessKey`), `secretkey`, `awssecretkey`, `awssecret`. Then optional quotes (also `\"`), `:`, `=` or
/// `=>`, optional spaces and quotes, and exactly 40 base64 bytes.
fn aws_secret_at(b: &[u8], t: usize) -> Option<(usize, usize)> {
    let is_label = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let mut ws = t;
    while ws > 0 && is_label(b[ws - 1]) && t - ws < 32 {
        ws -= 1;
    }
    let we = t + b[t..].iter().take(64).take_while(|&&c| is_label(c)).count();
    let mut norm = [0u8; 64];
    let mut n = 0;
    for &c in &b[ws..we] {
        if c != b'_' && c != b'-' {
            if n == norm.len() {
                return None;
            }
            norm[n] = c.to_ascii_lowercase();
            n += 1;
        }
    }
    let norm = &norm[..n];
    let labelled = norm.ends_with(b"secretaccesskey")
        || matches!(norm, b"secretkey" | b"awssecretkey" | b"awssecret");
    if !labelled {
        return None;
    }
    let skip_quote = |p: usize| {
        let q = if b.get(p) == Some(&b'\\') { p + 1 } else { p };
        if matches!(b.get(q), Some(b'"' | b'\'')) {
            q + 1
        } else {
            p
        }
    };
    let spaces = |p: usize| p + run(b, p, |c| c == b' ' || c == b'\t');
    let mut p = spaces(skip_quote(we));
    match b.get(p) {
        Some(b':') => p += 1,
        Some(b'=') => p += if b.get(p + 1) == Some(&b'>') { 2 } else { 1 },
        _ => return None,
    }
    p = skip_quote(spaces(p));
    let n = run(b, p, is_b64);
    (n == 40 && b.get(p + n) != Some(&b'=')).then_some((p, p + 40))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(String, &'static str)> {
        let sc = Scanner::new(|_| true);
        let mut out = Vec::new();
        sc.scan(text, &mut |s, e, d| {
            let name = BUILTINS
                .iter()
                .find(|(b, _)| *b == d)
                .map(|(_, n)| *n)
                .unwrap_or("?");
            out.push((text[s..e].to_string(), name));
            true
        });
        out
    }

    fn only(text: &str, det: &str) -> Vec<String> {
        found(text)
            .into_iter()
            .filter(|(_, d)| *d == det)
            .map(|(m, _)| m)
            .collect()
    }

    #[test]
    fn luhn_known_values() {
        let digits = |s: &str| s.bytes().map(|c| c - b'0').collect::<Vec<_>>();
        assert!(luhn(&digits("4111111111111111")));
        assert!(luhn(&digits("79927398713")));
        assert!(!luhn(&digits("4111111111111112")));
        assert!(!luhn(&digits("79927398710")));
    }

    #[test]
    fn card_positives() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500 0000 0000 0004",
            "2223000048400011",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
            "4222222222222",
        ] {
            for ctx in ["{}", "card={}", "pan: {} exp 12/27", "\"{}\"", "x\\n{}\\n"] {
                let text = ctx.replace("{}", card);
                assert_eq!(only(&text, "card"), vec![card.to_string()], "in {text:?}");
            }
        }
    }

    #[test]
    fn card_near_misses() {
        for text in [
            "4111111111111112",                     // Luhn fails
            "order 1234567812345670",               // passes Luhn but no issuer starts with 1
            "ts=1445144423722",                     // epoch milliseconds
            "41111111111111111",                    // 17 digits: not a Visa length
            "x4111111111111111",                    // glued to a word
            "blk_-4111111111111111",                // part of an identifier
            "0.4111111111111111",                   // a decimal
            "4111111111111111.5",                   // a decimal
            "4111111111111111a",                    // glued to a word
            "id 44111111111111111111",              // a longer digit run
            "12345678-4111-1111-1111-111111111111", // UUID-like
            "2023-10-05 12:34:56.789",              // timestamp
            "10.251.73.220:50010",                  // address
            "+1 415 555 2671",                      // phone
            "version 4.1.11.1111.1111.1111",        // version string
            "4111--1111--1111--1111",               // double separators
            "4111 1111-1111 1111",                  // mixed separators
            "channels 56 60 64 100 104 108",        // a list of small numbers
            "REPORT : 7024 5015 150454 240",        // numbers not laid out as a card
        ] {
            assert!(only(text, "card").is_empty(), "{text:?}: {:?}", found(text));
        }
    }

    #[test]
    fn card_inside_number_lists() {
        // A card between other numbers is cut at spaces, never at dashes.
        assert_eq!(
            only("ids 17 4111 1111 1111 1111 9", "card"),
            vec!["4111 1111 1111 1111"]
        );
        assert_eq!(
            only("2023-10-05 4111111111111111", "card"),
            vec!["4111111111111111"]
        );
        assert!(only("99-4111-1111-1111-1111", "card").is_empty());
    }

    #[test]
    fn ssn_positives_and_near_misses() {
        assert_eq!(only("ssn=123-45-6789.", "ssn"), vec!["123-45-6789"]);
        assert_eq!(
            only("{\"ssn\":\"078-05-1120\"}", "ssn"),
            vec!["078-05-1120"]
        );
        assert_eq!(
            only("a 123-45-6789 b 321-54-9876", "ssn"),
            vec!["123-45-6789", "321-54-9876"]
        );
        for text in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
            "1123-45-6789",
            "123-45-67890",
            "x123-45-6789",
            "2023-10-05",
            "555-123-4567",
            "123 45 6789",
            "1.123-45-6789",
            "123-45-6789-1",
            "req-123-45-6789",
        ] {
            assert!(only(text, "ssn").is_empty(), "{text:?}: {:?}", found(text));
        }
    }

    #[test]
    fn email() {
        assert_eq!(
            only("mail to Jane.Doe+x@mail.example.co.uk, please", "email"),
            vec!["Jane.Doe+x@mail.example.co.uk"]
        );
        assert_eq!(only("<bob@example.org>.", "email"), vec!["bob@example.org"]);
        assert_eq!(
            only("/users/xpc_ben%40163.com/", "email"),
            vec!["xpc_ben%40163.com"]
        );
        assert_eq!(
            only("\\nbob@example.org", "email"),
            vec!["nbob@example.org"]
        );
        for text in [
            "FastLeaderElection@774",
            "src@tbird-admin1",
            "Listener@10.10.34.11:3888",
            "java.lang.Object@6d06d69c",
            "@example.com",
            "bob@",
            "bob@-x.com",
            "bob@example.c",
            "a@b@",
        ] {
            assert!(
                only(text, "email").is_empty(),
                "{text:?}: {:?}",
                found(text)
            );
        }
    }

    #[test]
    fn jwt() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(only(&format!("token={jwt};"), "jwt"), vec![jwt]);
        assert_eq!(only(&format!("\"{jwt}\""), "jwt"), vec![jwt]);
        let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        assert_eq!(only(unsigned, "jwt"), vec![unsigned]);
        for text in [
            "eyJhbGciOiJ",
            "eyJhbGciOiJIUzI1NiJ9.eyJ",
            "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIi.dozjgNryP4J3jVmNHl0w5N",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIi.abc",
        ] {
            assert!(only(text, "jwt").is_empty(), "{text:?}: {:?}", found(text));
        }
    }

    #[test]
    fn bearer_and_basic() {
        assert_eq!(
            only("Authorization: Bearer abc123DEF456ghi", "bearer"),
            vec!["abc123DEF456ghi"]
        );
        assert_eq!(
            only("authorization=bearer  a.b-c_d~e+f/g==; next", "bearer"),
            vec!["a.b-c_d~e+f/g=="]
        );
        assert_eq!(
            only("\"Authorization\": \"BEARER 0123456789abcdef\"", "bearer"),
            vec!["0123456789abcdef"]
        );
        assert_eq!(
            only("Authorization: Basic dXNlcjpwYXNzd29yZA==", "bearer"),
            vec!["dXNlcjpwYXNzd29yZA=="]
        );
        assert_eq!(only("basic YTpi", "bearer"), vec!["YTpi"]);
        for text in [
            "using bearer authentication",
            "Bearer token",
            "WWW-Authenticate: Bearer realm=\"api\"",
            "forbearer abc123DEF456ghi",
            "basic auth enabled",
            "Basic dXNlcnBhc3N3b3Jk",
            "BasicStandardSteps=3786",
        ] {
            assert!(
                only(text, "bearer").is_empty(),
                "{text:?}: {:?}",
                found(text)
            );
        }
    }

    #[test]
    fn aws() {
        assert_eq!(
            only("key AKIAIOSFODNN7EXAMPLE used", "aws_key"),
            vec!["AKIAIOSFODNN7EXAMPLE"]
        );
        assert_eq!(
            only("\"ASIAY34FZKBOKMUTVV7A\"", "aws_key"),
            vec!["ASIAY34FZKBOKMUTVV7A"]
        );
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for ctx in [
            "aws_secret_access_key={}",
            "AWS_SECRET_ACCESS_KEY = {}",
            "\"SecretAccessKey\": \"{}\"",
            "{\\\"secretAccessKey\\\":\\\"{}\\\"}",
            "aws-secret-access-key: '{}'",
            "secret_key => {}",
        ] {
            let text = ctx.replace("{}", secret);
            assert_eq!(only(&text, "aws_key"), vec![secret], "in {text:?}");
        }
        for text in [
            "AKIAIOSFODNN7EXAMPL",
            "XAKIAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMPLEX",
            "AKIAiosfodnn7example",
            "secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYX",
            "TokenSecretManager: 1234",
        ] {
            assert!(
                only(text, "aws_key").is_empty(),
                "{text:?}: {:?}",
                found(text)
            );
        }
    }

    #[test]
    fn private_key() {
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(
            only(&format!("key:\n{pem}\nafter"), "private_key"),
            vec![pem]
        );
        let escaped = pem.replace('\n', "\\n");
        assert_eq!(
            only(&format!("{{\"k\":\"{escaped}\\n\"}}"), "private_key"),
            vec![escaped.clone()]
        );
        let open = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC";
        assert_eq!(only(&format!("x {open}"), "private_key"), vec![open]);
        let open_json = "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEI";
        assert_eq!(
            only(&format!("{{\"k\":\"{open_json}\"}}"), "private_key"),
            vec![open_json]
        );
        assert!(only(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "private_key"
        )
        .is_empty());
        assert!(only("-----BEGIN PUBLIC KEY-----", "private_key").is_empty());
    }

    #[test]
    fn base64_colon() {
        assert!(base64_has_colon(b"dXNlcjpwYXNz"));
        assert!(!base64_has_colon(b"dXNlcnBhc3M"));
    }
}
