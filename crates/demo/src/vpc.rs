//! VPC flow logs, default version-2 format, as delivered to S3 in five-minute objects with a header line.

use crate::fmt::{self, Clock};
use crate::rng::{self, Rng};
use crate::stream::Stream;
use crate::topo::{App, Pod, Topo, ACCOUNT, REGION};
use quarry_model::time::NANOS_PER_SEC;
use std::sync::Arc;

/// The header line of a default-format flow log object.
pub const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";

/// One flow record (seconds for times).
#[derive(Clone, Debug)]
pub struct Flow {
    pub start: i64,
    pub end: i64,
    pub eni: String,
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub packets: u64,
    pub bytes: u64,
    pub accept: bool,
}

/// The five-minute objects of the hour: `(start, end)` seconds of each.
pub fn files(t: &Topo) -> Vec<(i64, i64)> {
    let (a, b) = (t.t0 / NANOS_PER_SEC, t.t1 / NANOS_PER_SEC);
    let mut out = Vec::new();
    let mut s = a - a.rem_euclid(300);
    while s < b {
        out.push((s.max(a), (s + 300).min(b)));
        s += 300;
    }
    out
}

/// The object key of a flow-log file.
pub fn path(t: &Topo, start: i64) -> String {
    let mut r = rng::keyed(t.seed, &format!("vpc-name-{start}"));
    let aligned = start - start.rem_euclid(300);
    let mut c = Clock::default();
    let date = fmt::string(|o| c.slash_date(o, aligned * NANOS_PER_SEC));
    let stamp = fmt::string(|o| c.compact_minute(o, (aligned + 300) * NANOS_PER_SEC));
    format!(
        "vpcflow/AWSLogs/{ACCOUNT}/vpcflowlogs/{REGION}/{date}/{ACCOUNT}_vpcflowlogs_{REGION}_{}_{stamp}_{}.log",
        t.flow_log_id,
        rng::hex(&mut r, 8)
    )
}

fn poisson(r: &mut Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= rng::unit(r);
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
    let (u1, u2) = (1.0 - rng::unit(r), rng::unit(r));
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (lambda + lambda.sqrt() * z).round().max(0.0) as u64
}

const SCAN_PORTS: [(u32, (u16, u8)); 18] = [
    (8, (23, 6)),
    (6, (445, 6)),
    (6, (3389, 6)),
    (5, (8080, 6)),
    (3, (5900, 6)),
    (4, (6379, 6)),
    (3, (2375, 6)),
    (2, (9200, 6)),
    (3, (1433, 6)),
    (3, (3306, 6)),
    (2, (10250, 6)),
    (3, (8443, 6)),
    (2, (5432, 6)),
    (2, (81, 6)),
    (2, (7547, 6)),
    (2, (123, 17)),
    (2, (161, 17)),
    (2, (1900, 17)),
];

/// One five-minute flow-log object.
pub struct VpcStream {
    topo: Arc<Topo>,
    r: Rng,
    end: i64,
    minute: i64,
    header: bool,
    buckets: Vec<Vec<u8>>,
    attack: Vec<Flow>,
    aws_ips: Vec<u32>,
    stripe_ips: Vec<u32>,
}

impl VpcStream {
    /// The object covering `[start, end)` seconds; `attack` holds the attack's flows.
    pub fn new(topo: Arc<Topo>, start: i64, end: i64, attack: &[Flow]) -> VpcStream {
        let mut r = rng::keyed(topo.seed, &format!("vpc-{start}"));
        let mut ar = rng::keyed(topo.seed, "aws-endpoints");
        let aws_ips = (0..40)
            .map(|_| {
                let first = *rng::pick(&mut ar, &[3u32, 18, 34, 44, 52, 54]);
                (first << 24) | (rng::range(&mut ar, 0, 1 << 24) as u32)
            })
            .collect();
        let stripe_ips = (0..6).map(|_| rng::public_ip(&mut ar)).collect();
        let _ = rng::unit(&mut r);
        VpcStream {
            attack: attack
                .iter()
                .filter(|f| f.start >= start && f.start < end)
                .cloned()
                .collect(),
            topo,
            r,
            end,
            minute: start,
            header: false,
            buckets: vec![Vec::new(); 60],
            aws_ips,
            stripe_ips,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rec(
        &mut self,
        m0: i64,
        m1: i64,
        off: i64,
        dur: i64,
        eni: &str,
        src: u32,
        dst: u32,
        sport: u16,
        dport: u16,
        proto: u8,
        packets: u64,
        bytes: u64,
        accept: bool,
    ) {
        let start = (m0 + off).min(m1 - 1);
        let end = (start + dur)
            .min(self.topo.t1 / NANOS_PER_SEC + 1)
            .max(start);
        let o = &mut self.buckets[(start - m0) as usize];
        o.extend_from_slice(b"2 ");
        o.extend_from_slice(ACCOUNT.as_bytes());
        o.push(b' ');
        o.extend_from_slice(eni.as_bytes());
        o.push(b' ');
        fmt::ip(o, src);
        o.push(b' ');
        fmt::ip(o, dst);
        o.push(b' ');
        fmt::num(o, sport as u64);
        o.push(b' ');
        fmt::num(o, dport as u64);
        o.push(b' ');
        fmt::num(o, proto as u64);
        o.push(b' ');
        fmt::num(o, packets.max(1));
        o.push(b' ');
        fmt::num(o, bytes);
        o.push(b' ');
        fmt::num(o, start as u64);
        o.push(b' ');
        fmt::num(o, end as u64);
        o.extend_from_slice(if accept {
            b" ACCEPT OK\n"
        } else {
            b" REJECT OK\n"
        });
    }

    /// A TCP exchange seen on one ENI: the request direction and the response direction.
    #[allow(clippy::too_many_arguments)]
    fn pair(
        &mut self,
        m0: i64,
        m1: i64,
        eni: &str,
        a: u32,
        b: u32,
        sport: u16,
        dport: u16,
        proto: u8,
        req: (u64, u64),
        resp: (u64, u64),
        off: i64,
        dur: i64,
    ) {
        self.rec(
            m0, m1, off, dur, eni, a, b, sport, dport, proto, req.0, req.1, true,
        );
        self.rec(
            m0, m1, off, dur, eni, b, a, dport, sport, proto, resp.0, resp.1, true,
        );
    }

    fn minute(&mut self, m0: i64, m1: i64) {
        let topo = Arc::clone(&self.topo);
        let t = &*topo;
        let secs = (m1 - m0) as f64;
        let span = (m1 - m0) as u64;
        let at_ns = m0 * NANOS_PER_SEC;
        let alive = |app: App| -> Vec<&Pod> {
            t.pods
                .iter()
                .filter(|p| p.app == app && p.alive(at_ns))
                .collect()
        };
        let nginx = alive(App::Nginx);
        let backends: Vec<&Pod> = t
            .pods
            .iter()
            .filter(|p| matches!(p.app, App::Cart | App::Payments) && p.alive(at_ns))
            .collect();
        let dns = alive(App::CoreDns);
        let pg = alive(App::Postgres);
        let mut pay_on_node = vec![0u32; t.nodes.len()];
        for p in &backends {
            if p.app == App::Payments {
                pay_on_node[p.node] += 1;
            }
        }

        // Internet clients to the load balancer.
        let conns = poisson(&mut self.r, 1.25 * nginx.len() as f64 * secs);
        for _ in 0..conns {
            let r = &mut self.r;
            let alb = rng::range(r, 0, t.albs.len() as u64) as usize;
            let client = t.clients[rng::zipfish(r, t.clients.len())];
            let sport = rng::range(r, 1024, 65535) as u16;
            let off = rng::range(r, 0, span) as i64;
            let dur = rng::range(r, 0, 40) as i64;
            let rp = rng::range(r, 6, 40);
            let rb = rp * 52 + rng::skewed(r, 1800.0, 0.8) as u64;
            let sb = (rng::skewed(r, 24_000.0, 1.3) as u64).clamp(400, 5_000_000);
            let sp = sb / 1200 + 4;
            let eni = t.albs[alb].eni.clone();
            self.pair(
                m0,
                m1,
                &eni,
                client,
                t.albs[alb].ip,
                sport,
                443,
                6,
                (rp, rb),
                (sp, sb),
                off,
                dur,
            );
        }
        // Load balancer to nginx pods, and nginx to the services behind it.
        for alb in 0..t.albs.len() {
            for p in &nginx {
                let n = rng::range(&mut self.r, 1, 3);
                for _ in 0..n {
                    let r = &mut self.r;
                    let sport = rng::range(r, 1024, 65535) as u16;
                    let off = rng::range(r, 0, span) as i64;
                    let req = (rng::range(r, 40, 400), rng::range(r, 20_000, 200_000));
                    let resp = (rng::range(r, 60, 900), rng::range(r, 200_000, 4_000_000));
                    let (a_eni, n_eni) = (t.albs[alb].eni.clone(), t.nodes[p.node].eni.clone());
                    let a_ip = t.albs[alb].ip;
                    self.pair(m0, m1, &a_eni, a_ip, p.ip, sport, 80, 6, req, resp, off, 59);
                    self.pair(m0, m1, &n_eni, a_ip, p.ip, sport, 80, 6, req, resp, off, 59);
                }
            }
        }
        for p in &nginx {
            for _ in 0..3 {
                if backends.is_empty() {
                    break;
                }
                let r = &mut self.r;
                let b = *rng::pick(r, &backends);
                let sport = rng::range(r, 32768, 60999) as u16;
                let off = rng::range(r, 0, span) as i64;
                let req = (rng::range(r, 20, 200), rng::range(r, 4_000, 90_000));
                let resp = (rng::range(r, 20, 300), rng::range(r, 8_000, 400_000));
                self.cross(m0, m1, p, b, sport, 8080, 6, req, resp, off, 59);
            }
        }
        // Connection pools to PostgreSQL.
        for (i, b) in backends.iter().enumerate() {
            if pg.is_empty() {
                break;
            }
            let db = pg[i % pg.len()];
            for _ in 0..3 {
                let r = &mut self.r;
                let sport = rng::range(r, 32768, 60999) as u16;
                let req = (rng::range(r, 10, 120), rng::range(r, 1_500, 40_000));
                let resp = (rng::range(r, 10, 200), rng::range(r, 3_000, 250_000));
                let off = rng::range(r, 0, 3) as i64;
                self.cross(m0, m1, b, db, sport, 5432, 6, req, resp, off, 59);
            }
        }
        // DNS lookups to CoreDNS.
        for b in &backends {
            let n = poisson(&mut self.r, 0.1 * secs);
            for _ in 0..n {
                if dns.is_empty() {
                    break;
                }
                let r = &mut self.r;
                let d = *rng::pick(r, &dns);
                let sport = rng::range(r, 32768, 60999) as u16;
                let off = rng::range(r, 0, span) as i64;
                let q = rng::range(r, 1, 5);
                let req = (q, q * rng::range(r, 70, 95));
                let resp = (q, q * rng::range(r, 120, 260));
                self.cross(m0, m1, b, d, sport, 53, 17, req, resp, off, 1);
            }
        }
        for (i, node) in t.nodes.iter().enumerate() {
            let r = &mut self.r;
            // Kubelet to the API server through the control plane's ENIs, and back for logs/exec.
            let cp = &t.cp_enis[i % t.cp_enis.len()];
            let sport = rng::range(r, 32768, 60999) as u16;
            let req = (rng::range(r, 30, 90), rng::range(r, 9_000, 40_000));
            let resp = (rng::range(r, 30, 90), rng::range(r, 12_000, 90_000));
            let (ne, ce, nip, cip) = (node.eni.clone(), cp.eni.clone(), node.ip, cp.ip);
            self.pair(m0, m1, &ne, nip, cip, sport, 443, 6, req, resp, 0, 59);
            self.pair(m0, m1, &ce, nip, cip, sport, 443, 6, req, resp, 0, 59);
            let r = &mut self.r;
            if rng::chance(r, 0.3) {
                let sport = rng::range(r, 32768, 60999) as u16;
                let off = rng::range(r, 0, span) as i64;
                let req = (rng::range(r, 8, 30), rng::range(r, 1_500, 6_000));
                let resp = (rng::range(r, 8, 60), rng::range(r, 2_000, 80_000));
                self.pair(m0, m1, &ne, cip, nip, sport, 10250, 6, req, resp, off, 5);
                self.pair(m0, m1, &ce, cip, nip, sport, 10250, 6, req, resp, off, 5);
            }
            // AWS APIs (ECR, S3, STS, EC2) and the payment processor, from the node's address.
            let r = &mut self.r;
            let n = poisson(r, 0.02 * secs);
            for _ in 0..n {
                let r = &mut self.r;
                let dst = *rng::pick(r, &self.aws_ips);
                let sport = rng::range(r, 32768, 60999) as u16;
                let off = rng::range(r, 0, span) as i64;
                let req = (rng::range(r, 10, 40), rng::range(r, 1_500, 9_000));
                let resp = (rng::range(r, 10, 200), rng::range(r, 4_000, 400_000));
                self.pair(m0, m1, &ne, nip, dst, sport, 443, 6, req, resp, off, 3);
            }
            let pay = pay_on_node[i] as f64;
            let n = poisson(&mut self.r, 0.04 * pay * secs);
            for _ in 0..n {
                let r = &mut self.r;
                let dst = *rng::pick(r, &self.stripe_ips);
                let sport = rng::range(r, 32768, 60999) as u16;
                let off = rng::range(r, 0, span) as i64;
                let req = (rng::range(r, 10, 30), rng::range(r, 2_000, 8_000));
                let resp = (rng::range(r, 10, 30), rng::range(r, 5_000, 20_000));
                self.pair(m0, m1, &ne, nip, dst, sport, 443, 6, req, resp, off, 2);
            }
            // Internet noise: port scans (rejected) and SSH bots (the security group allows 22).
            let n = poisson(&mut self.r, 0.025 * secs);
            for _ in 0..n {
                let r = &mut self.r;
                let src = t.scanners[rng::range(r, 0, t.scanners.len() as u64) as usize];
                let (port, proto) = *rng::weighted(r, &SCAN_PORTS);
                let pk = *rng::pick(r, &[1u64, 1, 1, 2, 3]);
                let bytes = pk * if proto == 6 { 44 } else { 76 };
                let sport = rng::range(r, 1024, 65535) as u16;
                let off = rng::range(r, 0, span) as i64;
                let dur = pk as i64 - 1;
                self.rec(
                    m0, m1, off, dur, &ne, src, nip, sport, port, proto, pk, bytes, false,
                );
            }
            let n = poisson(&mut self.r, 0.006 * secs);
            for _ in 0..n {
                let r = &mut self.r;
                let src = t.scanners[rng::range(r, 0, t.scanners.len() as u64) as usize];
                let sport = rng::range(r, 1024, 65535) as u16;
                let off = rng::range(r, 0, span) as i64;
                let pk = rng::range(r, 10, 24);
                let req = (pk, pk * 90 + rng::range(r, 300, 800));
                let resp = (pk - 1, pk * 80 + rng::range(r, 900, 1500));
                self.pair(m0, m1, &ne, src, nip, sport, 22, 6, req, resp, off, 4);
            }
        }
        // Image pulls for the pods the rollout starts.
        for p in &t.pods {
            if p.app == App::Cart && p.started_in_window {
                let pull = p.start / NANOS_PER_SEC - 2;
                if pull >= m0 && pull < m1 {
                    let r = &mut self.r;
                    let dst = self.aws_ips[0];
                    let sport = rng::range(r, 32768, 60999) as u16;
                    let bytes = rng::range(r, 38_000_000, 46_000_000);
                    let ne = t.nodes[p.node].eni.clone();
                    let nip = t.nodes[p.node].ip;
                    self.pair(
                        m0,
                        m1,
                        &ne,
                        nip,
                        dst,
                        sport,
                        443,
                        6,
                        (bytes / 9000, bytes / 9000 * 52),
                        (bytes / 1448, bytes),
                        pull - m0,
                        2,
                    );
                }
            }
        }
        // An unused ENI reports that it saw nothing.
        let o = &mut self.buckets[0];
        o.extend_from_slice(b"2 ");
        o.extend_from_slice(ACCOUNT.as_bytes());
        o.push(b' ');
        o.extend_from_slice(t.idle_eni.as_bytes());
        o.extend_from_slice(b" - - - - - - - ");
        fmt::num(o, m0 as u64);
        o.push(b' ');
        fmt::num(o, m1 as u64);
        o.extend_from_slice(b" - NODATA\n");
        // The attack's flows.
        let attack: Vec<Flow> = self
            .attack
            .iter()
            .filter(|f| f.start >= m0 && f.start < m1)
            .cloned()
            .collect();
        for f in attack {
            self.rec(
                m0,
                m1,
                f.start - m0,
                f.end - f.start,
                &f.eni,
                f.src,
                f.dst,
                f.sport,
                f.dport,
                f.proto,
                f.packets,
                f.bytes,
                f.accept,
            );
        }
    }

    /// Traffic between two pods: seen on both nodes' ENIs, or on none when they share a node.
    #[allow(clippy::too_many_arguments)]
    fn cross(
        &mut self,
        m0: i64,
        m1: i64,
        a: &Pod,
        b: &Pod,
        sport: u16,
        dport: u16,
        proto: u8,
        req: (u64, u64),
        resp: (u64, u64),
        off: i64,
        dur: i64,
    ) {
        if a.node == b.node {
            return;
        }
        let t = Arc::clone(&self.topo);
        let (ea, eb) = (&t.nodes[a.node].eni, &t.nodes[b.node].eni);
        self.pair(
            m0, m1, ea, a.ip, b.ip, sport, dport, proto, req, resp, off, dur,
        );
        self.pair(
            m0, m1, eb, a.ip, b.ip, sport, dport, proto, req, resp, off, dur,
        );
    }
}

impl Stream for VpcStream {
    fn fill(&mut self, out: &mut Vec<u8>, limit: usize) -> bool {
        if !self.header {
            out.extend_from_slice(HEADER.as_bytes());
            self.header = true;
        }
        while out.len() < limit && self.minute < self.end {
            let m0 = self.minute;
            let m1 = (m0 - m0.rem_euclid(60) + 60).min(self.end);
            self.minute(m0, m1);
            for b in &mut self.buckets {
                out.extend_from_slice(b);
                b.clear();
            }
            self.minute = m1;
        }
        self.minute < self.end
    }
}
