//! The few facts the server reads from a client certificate that rustls has already verified: its serial
//! number, when it was issued and which node it names. A small DER reader (X.509 is DER, RFC 5280);
//! anything it does not understand is an error, never a panic.

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, lower-case hex without leading zero bytes.
    pub serial: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// The subject's common name.
    pub common_name: Option<String>,
    /// DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
}

impl CertInfo {
    /// The node the certificate names: its common name, else its first DNS name.
    pub fn node(&self) -> Option<&str> {
        self.common_name
            .as_deref()
            .or(self.dns_names.first().map(String::as_str))
    }
}

/// One DER element: tag and contents.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads the element at the start of `input`; returns it and the rest.
fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("truncated DER element")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte DER tags are not used in certificates".into());
    }
    let (&first, mut rest) = rest.split_first().ok_or("truncated DER length")?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad DER length".into());
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err("DER element longer than its input".into());
    }
    Ok((
        Tlv {
            tag,
            body: &rest[..len],
        },
        &rest[len..],
    ))
}

/// The elements of a constructed element's body.
fn children(mut body: &[u8]) -> Result<Vec<Tlv<'_>>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let (t, rest) = tlv(body)?;
        out.push(t);
        body = rest;
    }
    Ok(out)
}

const SEQUENCE: u8 = 0x30;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads a DER certificate.
pub fn parse_cert(der: &[u8]) -> Result<CertInfo, String> {
    let (cert, _) = tlv(der)?;
    let parts = children(cert.body)?;
    let tbs = parts
        .first()
        .filter(|t| t.tag == SEQUENCE)
        .ok_or("no TBSCertificate")?;
    let mut fields = children(tbs.body)?.into_iter().peekable();
    if fields.peek().is_some_and(|t| t.tag == 0xa0) {
        fields.next(); // [0] version
    }
    let serial = fields.next().filter(|t| t.tag == 0x02).ok_or("no serial")?;
    let serial_bytes = serial.body;
    let start = serial_bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(serial_bytes.len());
    let serial: String = serial_bytes[start..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fields.next(); // signature algorithm
    fields.next(); // issuer
    let validity = fields.next().ok_or("no validity")?;
    let not_before = children(validity.body)?
        .first()
        .map(time_of)
        .ok_or("no notBefore")??;
    let subject = fields.next().ok_or("no subject")?;
    let mut common_name = None;
    for rdn in children(subject.body)? {
        for atv in children(rdn.body)? {
            let kv = children(atv.body)?;
            if let [oid, value] = kv.as_slice() {
                if oid.body == OID_CN {
                    common_name = Some(String::from_utf8_lossy(value.body).into_owned());
                }
            }
        }
    }
    let mut dns_names = Vec::new();
    for f in fields {
        if f.tag != 0xa3 {
            continue;
        }
        let (exts, _) = tlv(f.body)?;
        for ext in children(exts.body)? {
            let e = children(ext.body)?;
            let (Some(oid), Some(value)) = (e.first(), e.last()) else {
                continue;
            };
            if oid.body != OID_SAN {
                continue;
            }
            let (names, _) = tlv(value.body)?;
            for n in children(names.body)? {
                if n.tag == 0x82 {
                    dns_names.push(String::from_utf8_lossy(n.body).into_owned());
                }
            }
        }
    }
    Ok(CertInfo {
        serial,
        not_before,
        common_name,
        dns_names,
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time_of(t: &Tlv<'_>) -> Result<i64, String> {
    let s = std::str::from_utf8(t.body).map_err(|_| "bad time")?;
    let digits = s.strip_suffix('Z').ok_or("time not in UTC")?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad time".into());
    }
    let (year, rest) = match (t.tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().map_err(|_| "bad time")?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().map_err(|_| "bad time")?, &digits[4..]),
        _ => return Err("bad time".into()),
    };
    let n = |i: usize| -> Result<i64, String> {
        rest.get(i..i + 2)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| "bad time".to_string())
    };
    let (month, day, h, m, sec) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x02, 0x30],
        ] {
            assert!(parse_cert(bad).is_err());
        }
    }
}
