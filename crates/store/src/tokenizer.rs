//! The log tokenizer: splits text into the words a hunter searches for and keeps IPs, CIDRs, UUIDs,
//! Kubernetes names, paths and user names whole.
//!
//! Text is cut into *chunks* at whitespace and punctuation such as quotes, brackets, `,;=|&?`. Inside a
//! chunk the characters `. - _ / : @ \` join: `10.0.3.17`, `10.0.0.0/16`, `kube-proxy-7xk2p`,
//! `/etc/kubernetes/admin.conf`, `system:serviceaccount:kube-system:default` and `alice@example.com` each
//! stay one token. A chunk that contains `: / @ \` is also emitted in *parts* split there, so
//! `10.0.3.17:443` is found by `10.0.3.17` and `443`, and the service account above by `kube-system`.
//! Tokens are lower-cased. Timestamps (`2024-05-01T12:00:00Z`, `12:00:00.123`) and tokens longer than
//! [`MAX_TOKEN_LEN`] are not indexed: they would only grow the dictionary.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Name under which the tokenizer is registered with tantivy.
pub const LOG_TOKENIZER: &str = "quarry_log";

/// Name of the tokenizer of already-tokenized text ([`block_words`]): words separated by spaces.
pub const WORDS_TOKENIZER: &str = "quarry_words";

/// Longest token that is indexed, in bytes.
pub const MAX_TOKEN_LEN: usize = 128;

const DELIM: u8 = 1;
const PART_SEP: u8 = 2;
const TRIM_LEAD: u8 = 4;
const TRIM_TAIL: u8 = 8;

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x21 {
        t[i] = DELIM;
        i += 1;
    }
    t[0x7f] = DELIM;
    let delims = b"\"',;()[]{}<>=|!?*&$#%^+~`";
    let mut j = 0;
    while j < delims.len() {
        t[delims[j] as usize] = DELIM;
        j += 1;
    }
    let seps = b":/@\\";
    let mut j = 0;
    while j < seps.len() {
        t[seps[j] as usize] |= PART_SEP;
        j += 1;
    }
    let lead = b".:-_@\\";
    let mut j = 0;
    while j < lead.len() {
        t[lead[j] as usize] |= TRIM_LEAD;
        j += 1;
    }
    let tail = b".:-_@/\\";
    let mut j = 0;
    while j < tail.len() {
        t[tail[j] as usize] |= TRIM_TAIL;
        j += 1;
    }
    t
}

static CLASS: [u8; 256] = classes();

#[inline]
fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

/// Trims joiner punctuation off a byte range of `text`; parts also lose a leading `/`.
fn trim(text: &[u8], mut from: usize, mut to: usize, part: bool) -> (usize, usize) {
    let lead = if part {
        TRIM_LEAD | TRIM_TAIL
    } else {
        TRIM_LEAD
    };
    while from < to && is(text[from], lead) {
        from += 1;
    }
    while to > from && is(text[to - 1], TRIM_TAIL) {
        to -= 1;
    }
    (from, to)
}

/// True for words that are not worth indexing: timestamps, times of day, over-long tokens.
fn skipped(word: &[u8]) -> bool {
    if word.len() > MAX_TOKEN_LEN {
        return true;
    }
    let d = |i: usize| word.get(i).is_some_and(u8::is_ascii_digit);
    let date = word.len() >= 11
        && (0..4).all(d)
        && word[4] == b'-'
        && d(5)
        && d(6)
        && word[7] == b'-'
        && d(8)
        && d(9)
        && matches!(word[10], b'T' | b't');
    let time = word.len() >= 7 && (word.get(1) == Some(&b':') || word.get(2) == Some(&b':')) && {
        let off = if word[1] == b':' { 1 } else { 2 };
        (0..off).all(d) && d(off + 1) && d(off + 2) && word.get(off + 3) == Some(&b':')
    };
    date || time
}

/// Calls `sink(word, from, to)` for every indexed token of `text`; the word is not yet lower-cased.
/// `bounded_only` keeps only tokens of chunks that do not touch the start or end of `text`.
fn each_token<'a>(text: &'a str, bounded_only: bool, mut sink: impl FnMut(&'a str, usize, usize)) {
    let b = text.as_bytes();
    let mut pos = 0;
    while pos < b.len() {
        while pos < b.len() && is(b[pos], DELIM) {
            pos += 1;
        }
        let start = pos;
        while pos < b.len() && !is(b[pos], DELIM) {
            pos += 1;
        }
        if start == pos || (bounded_only && (start == 0 || pos == b.len())) {
            continue;
        }
        let (from, to) = trim(b, start, pos, false);
        if from == to || skipped(&b[from..to]) {
            continue;
        }
        sink(&text[from..to], from, to);
        if !b[from..to].iter().any(|&c| is(c, PART_SEP)) {
            continue;
        }
        let mut p = from;
        while p < to {
            let part_start = p;
            while p < to && !is(b[p], PART_SEP) {
                p += 1;
            }
            let (pf, pt) = trim(b, part_start, p, true);
            if pf < pt && (pf, pt) != (from, to) && !skipped(&b[pf..pt]) {
                sink(&text[pf..pt], pf, pt);
            }
            p += 1;
        }
    }
}

fn lower_into(word: &str, out: &mut String) {
    out.clear();
    if word.is_ascii() {
        out.extend(word.bytes().map(|c| c.to_ascii_lowercase() as char));
    } else {
        out.push_str(&word.to_lowercase());
    }
}

/// All tokens of `text`, lower-cased, in order (duplicates kept).
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    each_token(text, false, |w, _, _| {
        let mut s = String::new();
        lower_into(w, &mut s);
        out.push(s);
    });
    out
}

/// The distinct tokens of several texts (the messages of a block), lower-cased and joined by spaces:
/// the block index needs each word once, and finding the repeats here is cheaper than indexing them.
pub fn block_words<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    let mut seen: rustc_hash::FxHashSet<std::borrow::Cow<'a, str>> = Default::default();
    let mut out = String::new();
    for text in texts {
        each_token(text, false, |w, _, _| {
            let word: std::borrow::Cow<'a, str> =
                if w.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80) {
                    let mut s = String::new();
                    lower_into(w, &mut s);
                    s.into()
                } else {
                    w.into()
                };
            if !seen.contains(&word) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&word);
                seen.insert(word);
            }
        });
    }
    out
}

/// Tokens that every text containing `needle` as a substring must also contain: those of chunks of the
/// needle that are delimited on both sides inside it. An empty result means the index cannot help.
pub fn guaranteed_tokens(needle: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    each_token(needle, true, |w, _, _| {
        let mut s = String::new();
        lower_into(w, &mut s);
        if !out.contains(&s) {
            out.push(s);
        }
    });
    out
}

/// The tantivy tokenizer for message text (see the module doc).
#[derive(Clone, Default)]
pub struct LogTokenizer {
    spans: Vec<(usize, usize)>,
}

/// Token stream of [`LogTokenizer`].
pub struct LogTokenStream<'a> {
    text: &'a str,
    spans: &'a [(usize, usize)],
    next: usize,
    token: Token,
}

impl Tokenizer for LogTokenizer {
    type TokenStream<'a> = LogTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> LogTokenStream<'a> {
        self.spans.clear();
        let spans = &mut self.spans;
        each_token(text, false, |_, from, to| spans.push((from, to)));
        LogTokenStream {
            text,
            spans: &self.spans,
            next: 0,
            token: Token::default(),
        }
    }
}

impl TokenStream for LogTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some(&(from, to)) = self.spans.get(self.next) else {
            return false;
        };
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.next;
        lower_into(&self.text[from..to], &mut self.token.text);
        self.next += 1;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_security_entities_whole() {
        let t = tokens(
            r#"Accepted password for alice@example.com from 10.0.3.17:443 ssh2; cidr=10.0.0.0/16 uid="3f2c5b1e-8a4d-4f6e-9b7a-1c2d3e4f5a6b""#,
        );
        for want in [
            "accepted",
            "alice@example.com",
            "alice",
            "example.com",
            "10.0.3.17:443",
            "10.0.3.17",
            "443",
            "10.0.0.0/16",
            "10.0.0.0",
            "16",
            "cidr",
            "3f2c5b1e-8a4d-4f6e-9b7a-1c2d3e4f5a6b",
        ] {
            assert!(t.contains(&want.to_string()), "{want} missing from {t:?}");
        }
        assert!(!t.contains(&"ssh2;".to_string()));
    }

    #[test]
    fn kubernetes_names_users_and_paths() {
        let t = tokens(
            "user system:serviceaccount:kube-system:default read /etc/kubernetes/admin.conf in kube-proxy-7xk2p.",
        );
        for want in [
            "system:serviceaccount:kube-system:default",
            "serviceaccount",
            "kube-system",
            "default",
            "/etc/kubernetes/admin.conf",
            "admin.conf",
            "kube-proxy-7xk2p",
        ] {
            assert!(t.contains(&want.to_string()), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|w| w.ends_with('.')));
        let ipv6 = tokens("from fe80::1ff:fe23:4567:890a port 22");
        assert!(ipv6.contains(&"fe80::1ff:fe23:4567:890a".to_string()));
        let win = tokens(r"login CORP\bob failed");
        assert!(win.contains(&r"corp\bob".to_string()) && win.contains(&"bob".to_string()));
    }

    #[test]
    fn timestamps_and_huge_tokens_are_not_indexed() {
        let t = tokens(&format!(
            "2024-05-01T12:00:00.123Z 12:00:01 I0501 12:00:02.123456 ok {}",
            "x".repeat(MAX_TOKEN_LEN + 1)
        ));
        assert_eq!(t, vec!["i0501", "ok"]);
    }

    #[test]
    fn block_words_are_distinct_and_lower_case() {
        let w = block_words(["GET /api ok", "get /API ok 10.0.0.1:80"].into_iter());
        assert_eq!(w, "get /api api ok 10.0.0.1:80 10.0.0.1 80");
    }

    #[test]
    fn lower_cases_unicode() {
        assert_eq!(tokens("ÄRGER Straße"), vec!["ärger", "straße"]);
    }

    #[test]
    fn guaranteed_tokens_are_only_inner_chunks() {
        assert!(guaranteed_tokens("10.0.3.17").is_empty());
        assert_eq!(
            guaranteed_tokens("Failed password for root from 10.0.3.17 port 22"),
            vec!["password", "for", "root", "from", "10.0.3.17", "port"]
        );
        // Every guaranteed token of a needle is a token of any text containing it.
        let text = "xxFailed password for root from 10.0.3.17 port 2222 ssh2";
        let all = tokens(text);
        for needle in [
            "password for root",
            " root from 10.0.3.17 port 2",
            "d password f",
        ] {
            assert!(text.contains(needle));
            for g in guaranteed_tokens(needle) {
                assert!(all.contains(&g), "{g} of {needle:?} not in {all:?}");
            }
        }
    }

    #[test]
    fn stream_matches_tokens() {
        let text = "GET /api/v1/namespaces/kube-system/secrets?limit=500 HTTP/1.1";
        let mut tk = LogTokenizer::default();
        let mut stream = tk.token_stream(text);
        let mut got = Vec::new();
        while stream.advance() {
            let t = stream.token();
            assert_eq!(text[t.offset_from..t.offset_to].to_lowercase(), t.text);
            got.push(t.text.clone());
        }
        assert_eq!(got, tokens(text));
        assert!(got.contains(&"secrets".to_string()) && got.contains(&"500".to_string()));
    }
}
