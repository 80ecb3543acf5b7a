//! logfmt lines: `key=value key2="quoted value" flag`. Values stay strings (a bare key is `true`).

use quarry_model::{Fields, Value};

/// Parses one logfmt line into `fields`; returns how many `key=value` pairs it held.
pub(crate) fn parse(line: &str, fields: &mut Fields) -> Result<usize, String> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut pairs = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let k0 = i;
        while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'=' | b'"') {
            i += 1;
        }
        if i == k0 {
            return Err(format!("logfmt: expected a key at byte {i}"));
        }
        let key = &line[k0..i];
        if b.get(i) != Some(&b'=') {
            if b.get(i) == Some(&b'"') {
                return Err(format!("logfmt: unexpected quote at byte {i}"));
            }
            fields.push(key, true);
            continue;
        }
        i += 1;
        pairs += 1;
        if b.get(i) == Some(&b'"') {
            i += 1;
            let mut val = String::new();
            let mut start = i;
            loop {
                match b.get(i) {
                    None => {
                        return Err(format!("logfmt: unterminated quoted value for key {key:?}"))
                    }
                    Some(b'\\') => {
                        val.push_str(&line[start..i]);
                        let esc = match b.get(i + 1) {
                            Some(b'n') => Some('\n'),
                            Some(b't') => Some('\t'),
                            Some(b'r') => Some('\r'),
                            Some(b'"') => Some('"'),
                            Some(b'\\') => Some('\\'),
                            _ => None,
                        };
                        match esc {
                            Some(c) => {
                                val.push(c);
                                i += 2;
                            }
                            None => {
                                val.push('\\');
                                i += 1;
                            }
                        }
                        start = i;
                    }
                    Some(b'"') => {
                        val.push_str(&line[start..i]);
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            fields.push(key, Value::Str(val));
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
                i += 1;
            }
            fields.push(key, &line[v0..i]);
        }
    }
    if pairs == 0 {
        return Err("logfmt: no key=value pairs".into());
    }
    Ok(pairs)
}

/// True when `line` starts with `identifier=` and holds at least two pairs (used by format detection).
pub(crate) fn looks_like(line: &str) -> bool {
    let b = line.as_bytes();
    let k = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'@'))
        .count();
    if k == 0 || b.get(k) != Some(&b'=') {
        return false;
    }
    let mut f = Fields::new();
    matches!(parse(line, &mut f), Ok(n) if n >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_quotes_and_flags() {
        let mut f = Fields::new();
        let n = parse(
            r#"ts=2024-05-01T12:00:00Z level=info msg="hello \"you\"" dry empty= path=/a=b"#,
            &mut f,
        )
        .unwrap();
        assert_eq!(n, 5);
        assert_eq!(f.get("msg"), Some(&Value::from("hello \"you\"")));
        assert_eq!(f.get("dry"), Some(&Value::Bool(true)));
        assert_eq!(f.get("empty"), Some(&Value::from("")));
        assert_eq!(f.get("path"), Some(&Value::from("/a=b")));
        assert!(parse(r#"a="unterminated"#, &mut Fields::new()).is_err());
        assert!(parse("just words here", &mut Fields::new()).is_err());
        assert!(parse(r#"a=1 "b"=2"#, &mut Fields::new()).is_err());
        assert!(looks_like("a=1 b=2") && !looks_like("a=1") && !looks_like("hello a=1 b=2"));
    }
}
