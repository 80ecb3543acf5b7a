//! Node logs of an Amazon Linux 2 EKS worker: `/var/log/messages` (kubelet, containerd, systemd, dhclient)
//! and `/var/log/secure` (sshd, sudo, crond sessions), RFC 3164 lines as rsyslog writes them.

use crate::fmt::{self, Clock};
use crate::rng::{self, Rng};
use crate::stream::{Actors, Sched, Script, SysLine, SCRIPT};
use crate::topo::{App, Node, Pod, Topo};
use quarry_model::time::NANOS_PER_SEC;
use std::sync::Arc;

const SEC: i64 = NANOS_PER_SEC;
const MS: i64 = 1_000_000;

/// Which of a node's two files.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NodeFile {
    /// `/var/log/messages`.
    Messages,
    /// `/var/log/secure`.
    Secure,
}

/// An admin's SSH session from the bastion, shared by both files of a node.
struct Session {
    start: i64,
    end: i64,
    id: u32,
    pid: u32,
    port: u64,
    commands: Vec<(i64, &'static str)>,
}

const SUDO_COMMANDS: [&str; 8] = [
    "/bin/journalctl -u kubelet --since -1h --no-pager",
    "/bin/systemctl status kubelet",
    "/bin/crictl ps",
    "/bin/df -h /var/lib/containerd",
    "/bin/crictl rmi --prune",
    "/bin/systemctl status containerd",
    "/bin/tail -n 200 /var/log/messages",
    "/usr/bin/yum check-update --security",
];

fn sessions(t: &Topo, node: usize) -> Vec<Session> {
    let mut r = rng::keyed(t.seed, &format!("admin-ssh-{node}"));
    let mut out = Vec::new();
    let n = if rng::chance(&mut r, 0.6) { 1 } else { 0 } + usize::from(rng::chance(&mut r, 0.2));
    let span = (t.t1 - t.t0 - 20 * 60 * SEC) as u64;
    let first_id = rng::range(&mut r, 3, 40) as u32;
    for id in first_id..first_id + n as u32 {
        let start = t.t0 + rng::range(&mut r, 0, span) as i64;
        let len = rng::range(&mut r, 90, 900) as i64 * SEC;
        let mut commands = Vec::new();
        let mut c = start + rng::range(&mut r, 8, 40) as i64 * SEC;
        for _ in 0..rng::range(&mut r, 1, 5) {
            if c >= start + len - 5 * SEC {
                break;
            }
            commands.push((c, *rng::pick(&mut r, &SUDO_COMMANDS)));
            c += rng::range(&mut r, 10, 120) as i64 * SEC;
        }
        out.push(Session {
            start,
            end: start + len,
            id,
            pid: rng::range(&mut r, 5000, 30000) as u32,
            port: rng::range(&mut r, 40000, 65000),
            commands,
        });
    }
    out
}

/// Times of the cron jobs (sysstat every 10 minutes, cron.hourly at :01), with their session numbers.
fn cron_times(t: &Topo, node: usize) -> Vec<(i64, u32)> {
    let mut r = rng::keyed(t.seed, &format!("cron-{node}"));
    let mut id = rng::range(&mut r, 1200, 4000) as u32;
    let first = t.t0.div_euclid(60 * SEC) * 60 * SEC;
    let mut out = Vec::new();
    let mut m = first;
    while m < t.t1 {
        let minute = (m / (60 * SEC)) % 60;
        if minute % 10 == 0 || minute == 1 {
            let at = m + SEC + rng::range(&mut r, 0, 40) as i64 * MS;
            if at >= t.t0 && at < t.t1 {
                out.push((at, id));
                id += 1;
            }
        }
        m += 60 * SEC;
    }
    out
}

fn klog(c: &mut Clock, ns: i64, sev: u8, pid: u32, loc: &str, msg: &str) -> String {
    fmt::string(|o| {
        c.klog(o, ns, sev);
        o.push(b' ');
        let digits = pid.to_string();
        for _ in digits.len()..7 {
            o.push(b' ');
        }
        o.extend_from_slice(digits.as_bytes());
        o.push(b' ');
        o.extend_from_slice(loc.as_bytes());
        o.extend_from_slice(b"] ");
        o.extend_from_slice(msg.as_bytes());
    })
}

fn containerd(c: &mut Clock, ns: i64, msg: &str) -> String {
    fmt::string(|o| {
        o.extend_from_slice(b"time=\"");
        c.rfc3339_nano(o, ns);
        o.extend_from_slice(b"\" level=info msg=\"");
        o.extend_from_slice(msg.replace('"', "\\\"").as_bytes());
        o.push(b'"');
    })
}

/// kubelet and containerd lines for a pod that starts or stops during the hour.
fn lifecycle(t: &Topo, p: &Pod, n: &Node, r: &mut Rng, out: &mut Vec<(i64, SysLine)>) {
    let mut c = Clock::default();
    let kl = |out: &mut Vec<(i64, SysLine)>, c: &mut Clock, at: i64, loc: &str, msg: String| {
        out.push((
            at,
            SysLine {
                prog: "kubelet",
                pid: n.kubelet_pid,
                msg: klog(c, at, b'I', n.kubelet_pid, loc, &msg),
            },
        ));
    };
    let cd = |out: &mut Vec<(i64, SysLine)>, c: &mut Clock, at: i64, msg: String| {
        out.push((
            at,
            SysLine {
                prog: "containerd",
                pid: n.containerd_pid,
                msg: containerd(c, at, &msg),
            },
        ));
    };
    let pod = format!("{}/{}", p.ns, p.name);
    let cname = p.containers[0];
    let cid = &p.container_ids[0];
    if p.started_in_window {
        // Created by the API (the attacker, or the ReplicaSet controller 1.9 s before the container runs).
        let created = if p.app == App::Debugger {
            t.attack.privileged
        } else {
            p.start - 1900 * MS
        };
        let mut a = created + 60 * MS;
        kl(
            out,
            &mut c,
            a,
            "kubelet.go:2432",
            format!("\"SyncLoop ADD\" source=\"api\" pods=[\"{pod}\"]"),
        );
        a += 40 * MS;
        let vol = rng::k8s_suffix(r, 5);
        if p.app == App::Debugger {
            kl(out, &mut c, a, "reconciler_common.go:258", format!("\"operationExecutor.VerifyControllerAttachedVolume started for volume \\\"host\\\" (UniqueName: \\\"kubernetes.io/host-path/{}-host\\\") pod \\\"{}\\\" (UID: \\\"{}\\\") \" pod=\"{pod}\"", p.uid, p.name, p.uid));
        }
        kl(out, &mut c, a + 30 * MS, "reconciler_common.go:258", format!("\"operationExecutor.VerifyControllerAttachedVolume started for volume \\\"kube-api-access-{vol}\\\" (UniqueName: \\\"kubernetes.io/projected/{}-kube-api-access-{vol}\\\") pod \\\"{}\\\" (UID: \\\"{}\\\") \" pod=\"{pod}\"", p.uid, p.name, p.uid));
        a += 400 * MS;
        cd(
            out,
            &mut c,
            a,
            format!(
                "RunPodSandbox for &PodSandboxMetadata{{Name:{},Uid:{},Namespace:{},Attempt:0,}}",
                p.name, p.uid, p.ns
            ),
        );
        a += 300 * MS;
        cd(out, &mut c, a, format!("RunPodSandbox for &PodSandboxMetadata{{Name:{},Uid:{},Namespace:{},Attempt:0,}} returns sandbox id \"{}\"", p.name, p.uid, p.ns, p.sandbox_id));
        a += 20 * MS;
        let (image, full) = if p.app == App::Debugger {
            ("alpine:3.19", p.image.as_str())
        } else {
            (p.image.as_str(), p.image.as_str())
        };
        cd(out, &mut c, a, format!("PullImage \"{image}\""));
        a = p.start - 450 * MS;
        let digest = rng::hex(r, 64);
        cd(out, &mut c, a, format!("ImageCreate event name:\"{full}\" labels:{{key:\"io.cri-containerd.image\" value:\"managed\"}}"));
        cd(
            out,
            &mut c,
            a + MS,
            format!("PullImage \"{image}\" returns image reference \"sha256:{digest}\""),
        );
        a = p.start - 200 * MS;
        cd(out, &mut c, a, format!("CreateContainer within sandbox \"{}\" for container &ContainerMetadata{{Name:{cname},Attempt:0,}}", p.sandbox_id));
        a += 60 * MS;
        cd(out, &mut c, a, format!("CreateContainer within sandbox \"{}\" for &ContainerMetadata{{Name:{cname},Attempt:0,}} returns container id \"{cid}\"", p.sandbox_id));
        cd(
            out,
            &mut c,
            a + 2 * MS,
            format!("StartContainer for \"{cid}\""),
        );
        a = p.start + 90 * MS;
        cd(
            out,
            &mut c,
            a,
            format!("StartContainer for \"{cid}\" returns successfully"),
        );
        kl(out, &mut c, a + 700 * MS, "kubelet.go:2464", format!("\"SyncLoop (PLEG): event for pod\" pod=\"{pod}\" event={{\"ID\":\"{}\",\"Type\":\"ContainerStarted\",\"Data\":\"{cid}\"}}", p.uid));
        kl(out, &mut c, a + 710 * MS, "kubelet.go:2464", format!("\"SyncLoop (PLEG): event for pod\" pod=\"{pod}\" event={{\"ID\":\"{}\",\"Type\":\"ContainerStarted\",\"Data\":\"{}\"}}", p.uid, p.sandbox_id));
        if p.app == App::Cart {
            kl(
                out,
                &mut c,
                p.start + 9700 * MS,
                "kubelet.go:2536",
                format!("\"SyncLoop (probe)\" probe=\"readiness\" status=\"ready\" pod=\"{pod}\""),
            );
        }
    }
    if p.stopped_in_window {
        let del = p.end - 21 * SEC;
        kl(
            out,
            &mut c,
            del + 30 * MS,
            "kubelet.go:2448",
            format!("\"SyncLoop DELETE\" source=\"api\" pods=[\"{pod}\"]"),
        );
        kl(out, &mut c, del + 40 * MS, "kuberuntime_container.go:779", format!("\"Killing container with a grace period\" pod=\"{pod}\" podUID=\"{}\" containerName=\"{cname}\" containerID=\"containerd://{cid}\" gracePeriod=30", p.uid));
        cd(
            out,
            &mut c,
            del + 45 * MS,
            format!("StopContainer for \"{cid}\" with timeout 30 (s)"),
        );
        cd(
            out,
            &mut c,
            del + 50 * MS,
            format!("Stop container \"{cid}\" with signal terminated"),
        );
        cd(
            out,
            &mut c,
            p.end,
            format!("shim disconnected\" id={cid} namespace=k8s.io"),
        );
        cd(
            out,
            &mut c,
            p.end + 80 * MS,
            format!("StopContainer for \"{cid}\" returns successfully"),
        );
        cd(
            out,
            &mut c,
            p.end + 90 * MS,
            format!("StopPodSandbox for \"{}\"", p.sandbox_id),
        );
        cd(
            out,
            &mut c,
            p.end + 250 * MS,
            format!(
                "TearDown network for sandbox \"{}\" successfully",
                p.sandbox_id
            ),
        );
        cd(
            out,
            &mut c,
            p.end + 260 * MS,
            format!(
                "StopPodSandbox for \"{}\" returns successfully",
                p.sandbox_id
            ),
        );
        kl(out, &mut c, p.end + 700 * MS, "kubelet.go:2464", format!("\"SyncLoop (PLEG): event for pod\" pod=\"{pod}\" event={{\"ID\":\"{}\",\"Type\":\"ContainerDied\",\"Data\":\"{cid}\"}}", p.uid));
        kl(
            out,
            &mut c,
            p.end + 900 * MS,
            "kubelet.go:2442",
            format!("\"SyncLoop REMOVE\" source=\"api\" pods=[\"{pod}\"]"),
        );
    }
}

#[derive(Clone, Copy)]
enum Actor {
    KubeletNoise,
    Probe(usize),
    Dhclient,
    SshBot,
}

/// One node file.
pub struct NodeStream {
    topo: Arc<Topo>,
    node: usize,
    r: Rng,
    clock: Clock,
    sched: Sched,
    actors: Vec<Actor>,
    script: Script<SysLine>,
    last: i64,
    dhclient_pid: u32,
    sshd_pid: u32,
    /// The node's application pods (their probes and status show in kubelet's lines).
    app_pods: Vec<usize>,
}

const BOT_USERS: [&str; 16] = [
    "admin",
    "user",
    "test",
    "oracle",
    "ubuntu",
    "guest",
    "support",
    "pi",
    "ftpuser",
    "mysql",
    "nagios",
    "hadoop",
    "tomcat",
    "steam",
    "minecraft",
    "debian",
];

impl NodeStream {
    /// The file of node `node`; `attack` holds scripted attack lines for it.
    pub fn new(topo: Arc<Topo>, node: usize, file: NodeFile, attack: Vec<(i64, SysLine)>) -> Self {
        let key = format!("node-{node}-{file:?}");
        let mut r = rng::keyed(topo.seed, &key);
        let mut sched = Sched::new(topo.t1);
        let mut actors = Vec::new();
        let mut items = attack;
        let n = &topo.nodes[node];
        let mut kr = rng::keyed(topo.seed, &format!("ssh-key-{}", topo.bastion));
        let ssh_key = format!("RSA SHA256:{}", rng::alnum(&mut kr, 43));
        let mut add = |sched: &mut Sched, r: &mut Rng, a: Actor, first: i64| {
            sched.at(
                topo.t0 + rng::range(r, 0, first as u64) as i64,
                actors.len() as u32,
            );
            actors.push(a);
        };
        let sess = sessions(&topo, node);
        let crons = cron_times(&topo, node);
        match file {
            NodeFile::Messages => {
                add(&mut sched, &mut r, Actor::KubeletNoise, 20 * SEC);
                add(&mut sched, &mut r, Actor::Dhclient, 1800 * SEC);
                for (i, p) in topo.pods.iter().enumerate() {
                    if p.node == node && matches!(p.app, App::AwsNode | App::Postgres) {
                        add(&mut sched, &mut r, Actor::Probe(i), 10 * SEC);
                        if p.app == App::AwsNode {
                            add(&mut sched, &mut r, Actor::Probe(i), 10 * SEC);
                        }
                    }
                    if p.node == node && (p.started_in_window || p.stopped_in_window) {
                        lifecycle(&topo, p, n, &mut r, &mut items);
                    }
                }
                for (at, id) in &crons {
                    items.push((
                        *at + 2 * MS,
                        SysLine {
                            prog: "systemd",
                            pid: 1,
                            msg: format!("Started Session c{id} of user root."),
                        },
                    ));
                }
                let logind = 2100 + (node as u32 * 7) % 300;
                for s in &sess {
                    items.push((
                        s.start + 60 * MS,
                        SysLine {
                            prog: "systemd-logind",
                            pid: logind,
                            msg: format!("New session {} of user ec2-user.", s.id),
                        },
                    ));
                    items.push((
                        s.start + 70 * MS,
                        SysLine {
                            prog: "systemd",
                            pid: 1,
                            msg: format!("Started Session {} of user ec2-user.", s.id),
                        },
                    ));
                    items.push((
                        s.end + 40 * MS,
                        SysLine {
                            prog: "systemd-logind",
                            pid: logind,
                            msg: format!("Removed session {}.", s.id),
                        },
                    ));
                }
            }
            NodeFile::Secure => {
                add(&mut sched, &mut r, Actor::SshBot, 170 * SEC);
                for (at, _) in &crons {
                    let pid = rng::range(&mut r, 9000, 32000) as u32;
                    items.push((
                        *at,
                        SysLine {
                            prog: "crond",
                            pid,
                            msg: "pam_unix(crond:session): session opened for user root by (uid=0)"
                                .into(),
                        },
                    ));
                    items.push((
                        *at + rng::range(&mut r, 30, 80) as i64 * MS,
                        SysLine {
                            prog: "crond",
                            pid,
                            msg: "pam_unix(crond:session): session closed for user root".into(),
                        },
                    ));
                }
                let bastion = fmt::ip_string(topo.bastion);
                for s in &sess {
                    let sl = |prog, pid, msg: String| SysLine { prog, pid, msg };
                    items.push((
                        s.start,
                        sl(
                            "sshd",
                            s.pid,
                            format!(
                                "Accepted publickey for ec2-user from {bastion} port {} ssh2: {ssh_key}",
                                s.port
                            ),
                        ),
                    ));
                    items.push((
                        s.start + 50 * MS,
                        sl(
                            "sshd",
                            s.pid,
                            "pam_unix(sshd:session): session opened for user ec2-user by (uid=0)"
                                .into(),
                        ),
                    ));
                    for (at, cmd) in &s.commands {
                        items.push((*at, sl("sudo", 0, format!("ec2-user : TTY=pts/0 ; PWD=/home/ec2-user ; USER=root ; COMMAND={cmd}"))));
                        items.push((
                            *at + 3 * MS,
                            sl(
                                "sudo",
                                0,
                                "pam_unix(sudo:session): session opened for user root by ec2-user(uid=0)".into(),
                            ),
                        ));
                        items.push((
                            *at + rng::range(&mut r, 200, 4000) as i64 * MS,
                            sl(
                                "sudo",
                                0,
                                "pam_unix(sudo:session): session closed for user root".into(),
                            ),
                        ));
                    }
                    items.push((
                        s.end,
                        sl(
                            "sshd",
                            s.pid,
                            format!(
                                "Received disconnect from {bastion} port {}:11: disconnected by user",
                                s.port
                            ),
                        ),
                    ));
                    items.push((
                        s.end + MS,
                        sl(
                            "sshd",
                            s.pid,
                            format!("Disconnected from user ec2-user {bastion} port {}", s.port),
                        ),
                    ));
                    items.push((
                        s.end + 4 * MS,
                        sl(
                            "sshd",
                            s.pid,
                            "pam_unix(sshd:session): session closed for user ec2-user".into(),
                        ),
                    ));
                }
            }
        }
        items.retain(|(t, _)| *t >= topo.t0 && *t < topo.t1);
        let app_pods = topo
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.node == node && matches!(p.app, App::Nginx | App::Cart | App::Payments)
            })
            .map(|(i, _)| i)
            .collect();
        let script = Script::new(items);
        if let Some(t) = script.next_time() {
            sched.at(t, SCRIPT);
        }
        NodeStream {
            dhclient_pid: 2400 + rng::range(&mut r, 0, 200) as u32,
            sshd_pid: 9000 + rng::range(&mut r, 0, 5000) as u32,
            topo,
            node,
            r,
            clock: Clock::default(),
            sched,
            actors,
            script,
            last: i64::MIN,
            app_pods,
        }
    }

    fn line(&mut self, out: &mut Vec<u8>, t: i64, prog: &str, pid: u32, msg: &str) {
        let t = t.max(self.last);
        self.last = t;
        self.clock.syslog(out, t);
        out.push(b' ');
        out.extend_from_slice(self.topo.nodes[self.node].host.as_bytes());
        out.push(b' ');
        out.extend_from_slice(prog.as_bytes());
        if pid > 0 {
            out.push(b'[');
            fmt::num(out, pid as u64);
            out.push(b']');
        }
        out.extend_from_slice(b": ");
        out.extend_from_slice(msg.as_bytes());
        out.push(b'\n');
    }

    fn fire(&mut self, t: i64, a: u32, out: &mut Vec<u8>) {
        if a == SCRIPT {
            if let Some(l) = self.script.take() {
                let (prog, pid, msg) = (l.prog, l.pid, l.msg.clone());
                self.line(out, t, prog, pid, &msg);
            }
            if let Some(nt) = self.script.next_time() {
                self.sched.at(nt, SCRIPT);
            }
            return;
        }
        let topo = Arc::clone(&self.topo);
        let n = &topo.nodes[self.node];
        let (kp, cp) = (n.kubelet_pid, n.containerd_pid);
        match self.actors[a as usize] {
            Actor::KubeletNoise => {
                let t2 = t.max(self.last);
                let r = &mut self.r;
                let pods: Vec<&Pod> = self
                    .app_pods
                    .iter()
                    .map(|&i| &topo.pods[i])
                    .filter(|p| p.alive(t2))
                    .collect();
                let mut which =
                    *rng::weighted(r, &[(5u32, 0u8), (3, 1), (2, 2), (2, 3), (1, 4), (2, 5)]);
                if pods.is_empty() && matches!(which, 1 | 5) {
                    which = 0;
                }
                let p = pods.first().map(|_| *rng::pick(r, &pods));
                let (sev, loc, msg) = match which {
                    0 => (
                        b'W',
                        "housekeeping.go:43",
                        format!(
                            "\"Housekeeping took longer than expected\" err=\"housekeeping took too long\" expected=\"1s\" actual=\"{}.{:03}s\"",
                            1,
                            rng::range(r, 20, 900)
                        ),
                    ),
                    1 => {
                        let Some(p) = p else { return };
                        (
                        b'I',
                        "prober.go:107",
                        format!(
                            "\"Probe failed\" probeType=\"Readiness\" pod=\"{}/{}\" podUID=\"{}\" containerName=\"{}\" probeResult=\"failure\" output=\"Get \\\"http://{}:{}/{}\\\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)\"",
                            p.ns,
                            p.name,
                            p.uid,
                            p.containers[0],
                            p.ip_s,
                            if p.app == App::Nginx { 80 } else { 8080 },
                            if p.app == App::Nginx { "healthz" } else { "actuator/health/readiness" }
                        ),
                    )
                    }
                    2 => (
                        b'E',
                        "kubelet_volumes.go:165",
                        format!(
                            "\"There were many similar errors. Turn up verbosity to see them.\" err=\"orphaned pod \\\"{}\\\" found, but error not a directory occurred when trying to remove the volumes dir\" numErrs={}",
                            rng::uuid(r),
                            rng::range(r, 1, 4)
                        ),
                    ),
                    3 => (
                        b'I',
                        "log.go:245",
                        format!(
                            "http: TLS handshake error from {}:{}: EOF",
                            fmt::ip_string(topo.cp_enis[0].ip),
                            rng::range(r, 32768, 60999)
                        ),
                    ),
                    4 => (
                        b'I',
                        "image_gc_manager.go:337",
                        format!(
                            "\"Disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold\" usage={} highThreshold=85 amountToFree={} lowThreshold=80",
                            rng::range(r, 85, 90),
                            rng::range(r, 300_000_000, 2_000_000_000)
                        ),
                    ),
                    _ => {
                        let Some(p) = p else { return };
                        (
                            b'I',
                            "kubelet.go:2536",
                            format!(
                                "\"SyncLoop (probe)\" probe=\"readiness\" status=\"ready\" pod=\"{}/{}\"",
                                p.ns, p.name
                            ),
                        )
                    }
                };
                let msg = klog(&mut self.clock, t2, sev, kp, loc, &msg);
                self.line(out, t2, "kubelet", kp, &msg);
                let next = t + rng::exp_ns(&mut self.r, 0.05);
                self.sched.at(next, a);
            }
            Actor::Probe(i) => {
                let p = &topo.pods[i];
                let cid = &p.container_ids[0];
                let cmd = if p.app == App::Postgres {
                    "[/bin/sh -c pg_isready -U postgres -h 127.0.0.1 -p 5432] and timeout 1 (s)"
                } else {
                    "[/app/grpc-health-probe -addr=:50051 -connect-timeout=5s -rpc-timeout=5s] and timeout 10 (s)"
                };
                let t2 = t.max(self.last);
                let m1 = containerd(
                    &mut self.clock,
                    t2,
                    &format!("ExecSync for \"{cid}\" with command {cmd}"),
                );
                self.line(out, t2, "containerd", cp, &m1);
                let t3 = t2 + rng::range(&mut self.r, 8, 60) as i64 * MS;
                let m2 = containerd(
                    &mut self.clock,
                    t3,
                    &format!("ExecSync for \"{cid}\" returns with exit code 0"),
                );
                self.line(out, t3, "containerd", cp, &m2);
                let next = t + rng::jitter(&mut self.r, 10 * SEC, 0.01);
                self.sched.at(next, a);
            }
            Actor::Dhclient => {
                let pid = self.dhclient_pid;
                let xid = rng::hex(&mut self.r, 8);
                let gw = (n.ip & 0xffff_f000) | 1;
                let gw = fmt::ip_string(gw);
                let renew = rng::range(&mut self.r, 1500, 1900);
                self.line(
                    out,
                    t,
                    "dhclient",
                    pid,
                    &format!("DHCPREQUEST on eth0 to {gw} port 67 (xid=0x{xid})"),
                );
                self.line(
                    out,
                    t + 2 * MS,
                    "dhclient",
                    pid,
                    &format!("DHCPACK from {gw} (xid=0x{xid})"),
                );
                self.line(
                    out,
                    t + 9 * MS,
                    "dhclient",
                    pid,
                    &format!("bound to {} -- renewal in {renew} seconds.", n.ip_s),
                );
                self.line(
                    out,
                    t + 60 * MS,
                    "ec2net",
                    0,
                    "[get_meta] Querying IMDS for meta-data/mac",
                );
                self.sched.at(t + renew as i64 * SEC, a);
            }
            Actor::SshBot => {
                let r = &mut self.r;
                let ip = fmt::ip_string(
                    topo.scanners[rng::range(r, 0, topo.scanners.len() as u64) as usize],
                );
                let port = rng::range(r, 1024, 65535);
                self.sshd_pid += rng::range(r, 1, 40) as u32;
                let pid = self.sshd_pid;
                let kind = *rng::weighted(r, &[(4u32, 0u8), (5, 1), (3, 2), (2, 3), (1, 4)]);
                let user = *rng::pick(r, &BOT_USERS);
                let mut lines: Vec<String> = Vec::new();
                match kind {
                    0 => lines.push(format!("Connection closed by {ip} port {port} [preauth]")),
                    1 => {
                        lines.push(format!("Invalid user {user} from {ip} port {port}"));
                        lines.push("pam_unix(sshd:auth): check pass; user unknown".into());
                        lines.push(format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}"));
                        lines.push(format!("Failed password for invalid user {user} from {ip} port {port} ssh2"));
                        lines.push(format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"));
                        lines.push(format!("Disconnected from invalid user {user} {ip} port {port} [preauth]"));
                    }
                    2 => {
                        lines.push(format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"));
                        lines.push(format!("Failed password for root from {ip} port {port} ssh2"));
                        lines.push(format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"));
                        lines.push(format!("Disconnected from authenticating user root {ip} port {port} [preauth]"));
                    }
                    3 => {
                        lines.push("error: kex_exchange_identification: Connection closed by remote host".into());
                        lines.push(format!("Connection closed by {ip} port {port}"));
                    }
                    _ => lines.push(format!("Unable to negotiate with {ip} port {port}: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]")),
                }
                let mut c = t;
                for l in lines {
                    self.line(out, c, "sshd", pid, &l);
                    c += rng::range(&mut self.r, 2, 2500) as i64 * MS;
                }
                let next = t + rng::exp_ns(&mut self.r, 0.006);
                self.sched.at(next, a);
            }
        }
    }
}

impl Actors for NodeStream {
    fn sched(&mut self) -> &mut Sched {
        &mut self.sched
    }

    fn fire(&mut self, t: i64, a: u32, out: &mut Vec<u8>) {
        NodeStream::fire(self, t, a, out)
    }
}

/// Where a node file lives in the tree.
pub fn path(n: &Node, file: NodeFile) -> String {
    match file {
        NodeFile::Messages => format!("nodes/{}/var/log/messages", n.name),
        NodeFile::Secure => format!("nodes/{}/var/log/secure", n.name),
    }
}
