//! Seeded randomness: one independent ChaCha stream per generated file, and the drawing helpers.

use crate::fmt;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator's RNG.
pub type Rng = ChaCha8Rng;

fn fnv1a(s: &str, basis: u64) -> u64 {
    let mut h = basis;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// An RNG for one purpose (a file, a plan), independent of every other key under the same seed.
pub fn keyed(seed: u64, key: &str) -> Rng {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&fnv1a(key, 0xcbf2_9ce4_8422_2325).to_le_bytes());
    s[16..24].copy_from_slice(&fnv1a(key, 0x8422_2325_cbf2_9ce4).to_le_bytes());
    s[24..].copy_from_slice(&(key.len() as u64).to_le_bytes());
    ChaCha8Rng::from_seed(s)
}

/// A uniform float in [0, 1).
#[inline]
pub fn unit(r: &mut Rng) -> f64 {
    r.random::<f64>()
}

/// A uniform integer in `[lo, hi)`.
#[inline]
pub fn range(r: &mut Rng, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        lo
    } else {
        r.random_range(lo..hi)
    }
}

/// True with probability `p`.
#[inline]
pub fn chance(r: &mut Rng, p: f64) -> bool {
    unit(r) < p
}

/// An exponential inter-arrival time in nanoseconds for `per_sec` events per second.
#[inline]
pub fn exp_ns(r: &mut Rng, per_sec: f64) -> i64 {
    let u = 1.0 - unit(r);
    ((-u.ln() / per_sec) * 1e9) as i64 + 1
}

/// A duration of `base` nanoseconds give or take `spread` (a fraction).
#[inline]
pub fn jitter(r: &mut Rng, base: i64, spread: f64) -> i64 {
    let f = 1.0 + spread * (2.0 * unit(r) - 1.0);
    ((base as f64) * f) as i64
}

/// A log-normal-ish positive value around `median`, for sizes and latencies.
pub fn skewed(r: &mut Rng, median: f64, sigma: f64) -> f64 {
    let (u1, u2) = (1.0 - unit(r), unit(r));
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

/// An element of a slice.
#[inline]
pub fn pick<'a, T>(r: &mut Rng, items: &'a [T]) -> &'a T {
    &items[r.random_range(0..items.len())]
}

/// An element of a slice, weighted by the first member of each pair.
pub fn weighted<'a, T>(r: &mut Rng, items: &'a [(u32, T)]) -> &'a T {
    let total: u32 = items.iter().map(|(w, _)| *w).sum();
    let mut x = r.random_range(0..total.max(1));
    for (w, t) in items {
        if x < *w {
            return t;
        }
        x -= *w;
    }
    &items[items.len() - 1].1
}

/// An index in `[0, n)` biased towards small indexes (a few heavy hitters, a long tail).
#[inline]
pub fn zipfish(r: &mut Rng, n: usize) -> usize {
    let u = unit(r);
    ((u * u * u) * n as f64) as usize % n.max(1)
}

/// A random version-4 UUID.
pub fn uuid(r: &mut Rng) -> String {
    fmt::string(|o| push_uuid(r, o))
}

/// Appends a random version-4 UUID.
pub fn push_uuid(r: &mut Rng, out: &mut Vec<u8>) {
    let a: u64 = r.random();
    let b: u64 = r.random();
    fmt::hex(out, a >> 32, 8);
    out.push(b'-');
    fmt::hex(out, (a >> 16) & 0xffff, 4);
    out.push(b'-');
    fmt::hex(out, 0x4000 | (a & 0x0fff), 4);
    out.push(b'-');
    fmt::hex(out, 0x8000 | ((b >> 48) & 0x3fff), 4);
    out.push(b'-');
    fmt::hex(out, b & 0xffff_ffff_ffff, 12);
}

/// `n` random lowercase hex digits.
pub fn hex(r: &mut Rng, n: usize) -> String {
    fmt::string(|o| {
        for _ in 0..n {
            fmt::hex(o, r.random_range(0..16), 1);
        }
    })
}

/// The alphabet Kubernetes uses for generated name suffixes and pod-template hashes.
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` characters of a Kubernetes-style random suffix (`7c9d5`).
pub fn k8s_suffix(r: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| K8S_ALPHABET[r.random_range(0..K8S_ALPHABET.len())] as char)
        .collect()
}

/// `n` random alphanumeric characters (mixed case), as in Stripe-style ids.
pub fn alnum(r: &mut Rng, n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| A[r.random_range(0..A.len())] as char)
        .collect()
}

/// `n` random uppercase letters and digits, as in AWS access-key ids.
pub fn upper(r: &mut Rng, n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..n)
        .map(|_| A[r.random_range(0..A.len())] as char)
        .collect()
}

/// A random public IPv4 address outside private, reserved and documentation ranges.
pub fn public_ip(r: &mut Rng) -> u32 {
    loop {
        let a: u32 = r.random();
        let o1 = a >> 24;
        let o2 = (a >> 16) & 255;
        let top24 = a >> 8;
        let bad = o1 == 0
            || o1 == 10
            || o1 == 127
            || o1 >= 224
            || (o1 == 100 && (64..128).contains(&o2))
            || (o1 == 169 && o2 == 254)
            || (o1 == 172 && (16..32).contains(&o2))
            || (o1 == 192 && o2 == 168)
            || (o1 == 198 && (18..20).contains(&o2))
            || top24 == 0x00C0_0002 // 192.0.2.0/24
            || top24 == 0x00C6_3364 // 198.51.100.0/24
            || top24 == 0x00CB_0071; // 203.0.113.0/24
        if !bad {
            return a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_streams_are_independent_and_repeatable() {
        let a: u64 = keyed(1, "x").random();
        assert_eq!(a, keyed(1, "x").random::<u64>());
        assert_ne!(a, keyed(1, "y").random::<u64>());
        assert_ne!(a, keyed(2, "x").random::<u64>());
        let mut r = keyed(3, "u");
        let u = uuid(&mut r);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        for _ in 0..10_000 {
            let ip = public_ip(&mut r);
            assert!(ip >> 8 != 0x00CB_0071 && ip >> 8 != 0x00C6_3364);
        }
    }
}
