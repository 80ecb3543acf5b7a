//! Shared by the corpus tests and the benchmark: the loghub lines of the shared test data, and generators of
//! secrets of every kind planted into them.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

/// The loghub systems whose `<name>_2k.log` the tests read.
pub const SYSTEMS: [&str; 16] = [
    "Android",
    "Apache",
    "BGL",
    "HDFS",
    "HPC",
    "Hadoop",
    "HealthApp",
    "Linux",
    "Mac",
    "OpenSSH",
    "OpenStack",
    "Proxifier",
    "Spark",
    "Thunderbird",
    "Windows",
    "Zookeeper",
];

/// The folder of the loghub samples in the shared test data.
pub fn loghub_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/node_logs/loghub")
}

/// The non-empty lines of one system's `_2k.log` (invalid UTF-8 replaced).
pub fn loghub_lines(system: &str) -> Vec<String> {
    let path = loghub_dir().join(system).join(format!("{system}_2k.log"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// A secret planted into a line: the text around it stays, `secret` must vanish, `detector` names the
/// replacement.
#[derive(Debug, Clone)]
pub struct Plant {
    pub detector: &'static str,
    /// Context before the secret (kept).
    pub before: String,
    /// The secret itself (replaced).
    pub secret: String,
    /// Context after the secret (kept).
    pub after: String,
}

/// A deterministic source of secrets.
pub struct Secrets {
    rng: ChaCha8Rng,
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 of `data` over `alphabet`, padded with `=` when `pad`.
pub fn base64(data: &[u8], alphabet: &[u8], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= n {
                out.push(alphabet[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The Luhn check digit that completes `digits`.
pub fn luhn_check_digit(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let d = d as u32;
        sum += if i % 2 == 0 {
            let x = d * 2;
            if x > 9 {
                x - 9
            } else {
                x
            }
        } else {
            d
        };
    }
    ((10 - sum % 10) % 10) as u8
}

impl Secrets {
    pub fn new(seed: u64) -> Secrets {
        Secrets {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.rng.random_range(0..alphabet.len())] as char)
            .collect()
    }

    /// A Luhn-valid card number of a random brand, with no separator, spaces or dashes.
    pub fn card(&mut self) -> String {
        let (prefix, len, groups): (String, usize, &[usize]) = match self.rng.random_range(0..9) {
            0 => ("4".into(), 16, &[4, 4, 4, 4]),
            1 => ("4".into(), 13, &[4, 3, 3, 3]),
            2 => (
                self.rng.random_range(51..=55).to_string(),
                16,
                &[4, 4, 4, 4],
            ),
            3 => (
                self.rng.random_range(2221..=2720).to_string(),
                16,
                &[4, 4, 4, 4],
            ),
            4 => (self.pick(&["34", "37"]).to_string(), 15, &[4, 6, 5]),
            5 => ("6011".into(), 16, &[4, 4, 4, 4]),
            6 => (
                self.rng.random_range(3528..=3589).to_string(),
                16,
                &[4, 4, 4, 4],
            ),
            7 => ("62".into(), 19, &[4, 4, 4, 4, 3]),
            _ => ("36".into(), 14, &[4, 6, 4]),
        };
        let mut digits: Vec<u8> = prefix.bytes().map(|c| c - b'0').collect();
        while digits.len() < len - 1 {
            digits.push(self.rng.random_range(0..10));
        }
        digits.push(luhn_check_digit(&digits));
        let sep = self.pick(&["", " ", "-"]);
        let mut out = String::new();
        let mut i = 0;
        for (k, g) in groups.iter().enumerate() {
            if k > 0 {
                out.push_str(sep);
            }
            for d in &digits[i..i + g] {
                out.push((b'0' + d) as char);
            }
            i += g;
        }
        out
    }

    /// A well-formed social security number.
    pub fn ssn(&mut self) -> String {
        let area = loop {
            let a = self.rng.random_range(1..900);
            if a != 666 {
                break a;
            }
        };
        format!(
            "{area:03}-{:02}-{:04}",
            self.rng.random_range(1..100),
            self.rng.random_range(1..10000)
        )
    }

    pub fn email(&mut self) -> String {
        let local = format!(
            "{}{}{}",
            self.chars(b"abcdefghijklmnopqrstuvwxyz", 1),
            self.chars(b"abcdefghijklmnopqrstuvwxyz0123456789", 5),
            self.pick(&["", ".smith", "+tag", "_2", "-ops"])
        );
        let domain = format!(
            "{}{}.{}",
            self.chars(b"abcdefghijklmnopqrstuvwxyz", 6),
            self.pick(&["", ".mail", ".corp-eu"]),
            self.pick(&["com", "org", "io", "de", "co.uk", "example"])
        );
        format!("{local}@{domain}")
    }

    pub fn jwt(&mut self) -> String {
        let alg = self.pick(&["HS256", "RS256", "ES384"]);
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let payload = format!(
            r#"{{"sub":"{}","iat":{},"admin":true}}"#,
            self.chars(b"abcdefghij0123456789", 10),
            self.rng.random_range(1_500_000_000u64..1_800_000_000)
        );
        let sig_len = if alg == "RS256" { 342 } else { 43 };
        format!(
            "{}.{}.{}",
            base64(header.as_bytes(), B64URL, false),
            base64(payload.as_bytes(), B64URL, false),
            self.chars(B64URL, sig_len)
        )
    }

    /// An opaque bearer token (letters, digits and a few symbols).
    pub fn token(&mut self) -> String {
        let n = self.rng.random_range(20..48);
        let mut t = self.chars(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            n,
        );
        t.push_str(self.pick(&["", "-x9", "_k2", ".v1", "=="]));
        t
    }

    /// Basic credentials: base64 of `user:password`.
    pub fn basic(&mut self) -> String {
        let user = self.chars(b"abcdefghijklmnopqrstuvwxyz", 6);
        let pass = self.chars(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789!#%", 12);
        base64(format!("{user}:{pass}").as_bytes(), B64, true)
    }

    pub fn aws_key_id(&mut self) -> String {
        let prefix = self.pick(&["AKIA", "ASIA", "ABIA", "ACCA"]);
        format!(
            "{prefix}{}",
            self.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        )
    }

    pub fn aws_secret(&mut self) -> String {
        self.chars(B64, 40)
    }

    /// A PEM private key block with real newlines.
    pub fn pem(&mut self) -> String {
        let label = self.pick(&[
            "RSA PRIVATE KEY",
            "PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
        ]);
        let lines = self.rng.random_range(2..8);
        let mut body = String::new();
        for _ in 0..lines {
            body.push_str(&self.chars(B64, 64));
            body.push('\n');
        }
        format!("-----BEGIN {label}-----\n{body}-----END {label}-----")
    }

    /// A secret of kind number `kind % 11`, in a typical context.
    pub fn plant(&mut self, kind: usize) -> Plant {
        let p = |detector, before: &str, secret: String, after: &str| Plant {
            detector,
            before: before.to_string(),
            secret,
            after: after.to_string(),
        };
        match kind % 11 {
            0 => {
                let c = self.pick(&["card=", "pan: ", "paid with ", "\"cc\":\""]);
                let card = self.card();
                // A separator after, so the number cannot run on into a number of the line.
                p("card", c, card, if c.ends_with('"') { "\"" } else { "," })
            }
            1 => {
                let c = self.pick(&["ssn=", "SSN: ", "patient ssn ", "ssn:"]);
                let ssn = self.ssn();
                p("ssn", c, ssn, "")
            }
            2 => {
                let c = self.pick(&["user=", "mail to <", "from: ", ""]);
                let e = self.email();
                p("email", c, e, if c.ends_with('<') { ">" } else { "" })
            }
            3 => {
                let c = self.pick(&["token=", "id_token: ", "jwt "]);
                let j = self.jwt();
                p("jwt", c, j, "")
            }
            4 => {
                let c = self.pick(&["Authorization: Bearer ", "authorization=bearer ", "BEARER "]);
                let t = self.token();
                p("bearer", c, t, "")
            }
            5 => {
                let b = self.basic();
                p("bearer", "Authorization: Basic ", b, "")
            }
            6 => {
                let c = self.pick(&["key ", "AWS_ACCESS_KEY_ID=", "\"AccessKeyId\": \""]);
                let k = self.aws_key_id();
                p("aws_key", c, k, if c.ends_with('"') { "\"" } else { "" })
            }
            7 => {
                let c = self.pick(&[
                    "aws_secret_access_key=",
                    "\"SecretAccessKey\": \"",
                    "AWS_SECRET_ACCESS_KEY: ",
                ]);
                let s = self.aws_secret();
                p("aws_key", c, s, if c.ends_with('"') { "\"" } else { "" })
            }
            8 => {
                let k = self.pem();
                p("private_key", "key:\n", k, "\n")
            }
            9 => {
                // A PEM block inside a JSON-like string, newlines escaped.
                let k = self.pem().replace('\n', "\\n");
                p("private_key", "{\"key\":\"", k, "\\n\"}")
            }
            _ => {
                let card = self.card();
                p("card", "(", card, ")")
            }
        }
    }
}

/// A line with a secret planted: the original line cut at a space, the plant between the halves.
pub struct Planted {
    pub left: String,
    pub plant: Plant,
    pub right: String,
}

impl Planted {
    /// Cuts `line` at a space chosen by `rng_pos` (or at the end) and plants `plant` there.
    pub fn new(line: &str, plant: Plant, rng_pos: usize) -> Planted {
        let spaces: Vec<usize> = line.match_indices(' ').map(|(i, _)| i).collect();
        let cut = if spaces.is_empty() {
            line.len()
        } else {
            spaces[rng_pos % spaces.len()]
        };
        Planted {
            left: format!("{} ", &line[..cut]),
            plant,
            right: line[cut..].to_string(),
        }
    }

    pub fn text(&self) -> String {
        format!(
            "{}{}{}{}{}",
            self.left, self.plant.before, self.plant.secret, self.plant.after, self.right
        )
    }
}

/// Planted lines over all loghub systems, one secret per line, kinds in turn.
pub fn planted_corpus(seed: u64) -> Vec<Planted> {
    let mut secrets = Secrets::new(seed);
    let mut pos = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut out = Vec::new();
    for sys in SYSTEMS {
        for (i, line) in loghub_lines(sys).iter().enumerate() {
            let plant = secrets.plant(i);
            out.push(Planted::new(line, plant, pos.random_range(0..1000)));
        }
    }
    out
}
