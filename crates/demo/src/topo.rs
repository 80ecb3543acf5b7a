//! The simulated cluster: nodes, pods, network addresses and API identities, all drawn from the seed.

use crate::fmt::{self, ip_string};
use crate::rng::{self, Rng};
use crate::DemoConfig;
use quarry_model::time::NANOS_PER_SEC;
use std::collections::HashSet;

/// AWS account of the demo (the documentation example account).
pub const ACCOUNT: &str = "111122223333";
/// AWS region of the demo.
pub const REGION: &str = "us-east-1";
/// `git` short hash in the EKS kubelet version.
pub const KUBELET_UA: &str = "kubelet/v1.29.3 (linux/amd64) kubernetes/ae9a62a";
/// Control-plane build.
pub const CP_BUILD: &str = "v1.29.4 (linux/amd64) kubernetes/8f3c35f";
/// ECR registry of the shop's images.
pub const ECR: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";

/// What runs in a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// nginx front end (shop/frontend).
    Nginx,
    /// Spring Boot cart service (shop/cart).
    Cart,
    /// Spring Boot payments service (payments/payments-api).
    Payments,
    /// PostgreSQL (payments/postgres).
    Postgres,
    /// CoreDNS (kube-system/coredns).
    CoreDns,
    /// Amazon VPC CNI (kube-system/aws-node).
    AwsNode,
    /// kube-proxy (kube-system/kube-proxy).
    KubeProxy,
    /// The attacker's privileged pod.
    Debugger,
}

/// A worker node.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub host: String,
    pub ip: u32,
    pub ip_s: String,
    pub eni: String,
    pub uid: String,
    pub kubelet_pid: u32,
    pub containerd_pid: u32,
    pub user_json: String,
}

/// A pod and where and when it ran.
#[derive(Debug, Clone)]
pub struct Pod {
    pub ns: &'static str,
    pub name: String,
    pub uid: String,
    pub node: usize,
    pub ip: u32,
    pub ip_s: String,
    pub app: App,
    pub containers: &'static [&'static str],
    pub container_ids: Vec<String>,
    pub sandbox_id: String,
    /// First instant the pod logs (window start if it ran before).
    pub start: i64,
    /// Instant the pod stops (window end if it outlives it).
    pub end: i64,
    pub started_in_window: bool,
    pub stopped_in_window: bool,
    pub replica: usize,
    pub image: String,
    /// The pod's service-account token, as the apiserver describes its user.
    pub user_json: String,
}

impl Pod {
    /// True when the pod is running at `t`.
    pub fn alive(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }
}

/// A network endpoint with its own ENI (load balancer, control plane).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub ip: u32,
    pub eni: String,
}

/// When each step of the attack happens (nanoseconds).
#[derive(Debug, Clone, Copy)]
pub struct AttackTimes {
    /// First SSH login attempt.
    pub ssh: i64,
    /// First unauthenticated API request.
    pub probe: i64,
    /// First request with the stolen token.
    pub token: i64,
    /// The exec into the payments-api pod.
    pub exec: i64,
    /// The pg_dump connection from inside that pod.
    pub dump: i64,
    /// Creation of the privileged pod.
    pub privileged: i64,
    /// Start of the privileged pod's container.
    pub pod_runs: i64,
    /// Creation of the ClusterRoleBinding.
    pub crb: i64,
    /// First byte sent to the exfiltration address (the pod's command sleeps 180 s first).
    pub exfil: i64,
    /// How long the exfiltration lasts.
    pub exfil_len: i64,
}

impl AttackTimes {
    /// Draws the timeline: the probe 18 to 24 minutes into the hour, the rest over the next ~23 minutes.
    fn new(r: &mut Rng, t0: i64) -> AttackTimes {
        let s = NANOS_PER_SEC;
        let mut within =
            |lo: i64, hi: i64| lo * s + rng::range(r, 0, ((hi - lo) * s) as u64) as i64;
        let probe = t0 + within(18 * 60, 24 * 60);
        let exec = probe + within(9 * 60, 9 * 60 + 40);
        let privileged = probe + within(13 * 60, 13 * 60 + 30);
        let pod_runs = privileged + within(8, 10);
        AttackTimes {
            ssh: probe - 9 * 60 * s + within(0, 40),
            probe,
            token: probe + within(4 * 60, 4 * 60 + 30),
            exec,
            dump: exec + within(80, 110),
            privileged,
            pod_runs,
            crb: probe + within(15 * 60, 15 * 60 + 20),
            exfil: pod_runs + 180 * s + within(0, 1),
            exfil_len: 6 * 60 * s,
        }
    }
}

/// The rollout of a new cart version by CI during the hour.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub at: i64,
    pub new_rs: String,
    pub old_image: String,
    pub new_image: String,
}

/// Everything about the simulated cluster that several files must agree on.
#[derive(Debug, Clone)]
pub struct Topo {
    pub seed: u64,
    pub scale: u32,
    pub cluster: String,
    /// Generated events lie in `[t0, t1)` (nanoseconds), inside the hour that ends at the configured end.
    pub t0: i64,
    pub t1: i64,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub albs: Vec<Endpoint>,
    pub cp_enis: Vec<Endpoint>,
    pub idle_eni: String,
    /// Source addresses of control-plane components in audit events.
    pub cp_src: Vec<String>,
    pub bastion: u32,
    pub ci_runner: u32,
    pub office_ip: u32,
    pub clients: Vec<u32>,
    pub scanners: Vec<u32>,
    pub rollout: Rollout,
    pub flow_log_id: String,
    /// When each step of the attack happens.
    pub attack: AttackTimes,
    /// Index of the payments-api pod whose token was stolen.
    pub victim: usize,
}

const AZS: [(&str, u32); 3] = [
    ("us-east-1a", 0x0a00_0000),
    ("us-east-1b", 0x0a00_1000),
    ("us-east-1c", 0x0a00_2000),
];

/// The JSON object of an apiserver `user`.
pub fn user_json(name: &str, uid: Option<&str>, groups: &[&str], extra: &[(&str, &str)]) -> String {
    let mut o = Vec::with_capacity(256);
    o.extend_from_slice(b"{\"username\":\"");
    fmt::json_str(&mut o, name);
    o.push(b'"');
    if let Some(uid) = uid {
        o.extend_from_slice(b",\"uid\":\"");
        fmt::json_str(&mut o, uid);
        o.push(b'"');
    }
    o.extend_from_slice(b",\"groups\":[");
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            o.push(b',');
        }
        o.push(b'"');
        fmt::json_str(&mut o, g);
        o.push(b'"');
    }
    o.push(b']');
    if !extra.is_empty() {
        o.extend_from_slice(b",\"extra\":{");
        for (i, (k, v)) in extra.iter().enumerate() {
            if i > 0 {
                o.push(b',');
            }
            o.push(b'"');
            fmt::json_str(&mut o, k);
            o.extend_from_slice(b"\":[\"");
            fmt::json_str(&mut o, v);
            o.extend_from_slice(b"\"]");
        }
        o.push(b'}');
    }
    o.push(b'}');
    String::from_utf8(o).unwrap_or_default()
}

/// The user of a pod-bound service-account token.
pub fn sa_user(ns: &str, sa: &str, sa_uid: &str, pod: Option<(&Pod, &Node)>, jti: &str) -> String {
    let name = format!("system:serviceaccount:{ns}:{sa}");
    let g2 = format!("system:serviceaccounts:{ns}");
    let groups = [
        "system:serviceaccounts",
        g2.as_str(),
        "system:authenticated",
    ];
    let cred = format!("JTI={jti}");
    match pod {
        Some((p, n)) => user_json(
            &name,
            Some(sa_uid),
            &groups,
            &[
                ("authentication.kubernetes.io/credential-id", &cred),
                ("authentication.kubernetes.io/node-name", &n.name),
                ("authentication.kubernetes.io/node-uid", &n.uid),
                ("authentication.kubernetes.io/pod-name", &p.name),
                ("authentication.kubernetes.io/pod-uid", &p.uid),
            ],
        ),
        None => user_json(
            &name,
            Some(sa_uid),
            &groups,
            &[("authentication.kubernetes.io/credential-id", &cred)],
        ),
    }
}

struct Alloc {
    used: HashSet<u32>,
}

impl Alloc {
    fn in_subnet(&mut self, r: &mut Rng, base: u32, size: u32) -> u32 {
        loop {
            let ip = base + rng::range(r, 10, size as u64 - 2) as u32;
            if self.used.insert(ip) {
                return ip;
            }
        }
    }
}

fn ceil_sec(ns: i64) -> i64 {
    let s = NANOS_PER_SEC;
    (ns + s - 1).div_euclid(s) * s
}

impl Topo {
    /// Builds the cluster for a configuration.
    pub fn new(cfg: &DemoConfig) -> Topo {
        let scale = cfg.scale.max(1);
        let n = scale as usize;
        let mut r = rng::keyed(cfg.seed, "topology");
        let mut alloc = Alloc {
            used: HashSet::new(),
        };
        let we = cfg.end_ns;
        let ws = we - 3600 * NANOS_PER_SEC;
        let (t0, t1) = (ceil_sec(ws), we - 2 * NANOS_PER_SEC);

        let mut nodes = Vec::with_capacity(4 * n);
        for i in 0..4 * n {
            let (_, base) = AZS[i % 3];
            let ip = alloc.in_subnet(&mut r, base, 4096);
            let ip_s = ip_string(ip);
            let host = format!("ip-{}", ip_s.replace('.', "-"));
            let instance = format!("i-0{}", rng::hex(&mut r, 16));
            let access = format!("ASIA{}", rng::upper(&mut r, 16));
            let role_id = "AROAYZEXAMPLENODE7Q4K";
            let role = format!("{}-node-role", cfg.cluster);
            let arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{instance}");
            let name = format!("{host}.ec2.internal");
            let uid = format!("aws-iam-authenticator:{ACCOUNT}:{role_id}");
            let user = user_json(
                &format!("system:node:{name}"),
                Some(&uid),
                &[
                    "system:bootstrappers",
                    "system:nodes",
                    "system:authenticated",
                ],
                &[
                    ("accessKeyId", &access),
                    ("arn", &arn),
                    (
                        "canonicalArn",
                        &format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
                    ),
                    ("principalId", role_id),
                    ("sessionName", &instance),
                    ("sigs.k8s.io/aws-iam-authenticator/principalId", role_id),
                ],
            );
            nodes.push(Node {
                name,
                host,
                ip,
                ip_s,
                eni: format!("eni-0{}", rng::hex(&mut r, 16)),
                uid: rng::uuid(&mut r),
                kubelet_pid: rng::range(&mut r, 2900, 3900) as u32,
                containerd_pid: rng::range(&mut r, 2600, 2900) as u32,
                user_json: user,
            });
        }

        let payments_sa_uid = rng::uuid(&mut r);
        let mut pods = Vec::new();
        let nn = nodes.len();
        let full = |start: i64, end: i64| (start, end, start > ws, end < we);
        let add_deploy = |r: &mut Rng,
                          alloc: &mut Alloc,
                          pods: &mut Vec<Pod>,
                          ns: &'static str,
                          name: &str,
                          app: App,
                          containers: &'static [&'static str],
                          replicas: usize,
                          rs: &str,
                          image: &str,
                          span: &dyn Fn(usize) -> (i64, i64, bool, bool)| {
            let offset = rng::range(r, 0, nn as u64) as usize;
            let host_net = matches!(app, App::AwsNode | App::KubeProxy);
            for i in 0..replicas {
                let node = if host_net { i } else { (offset + i) % nn };
                let ip = if host_net {
                    nodes[node].ip
                } else {
                    let (_, base) = AZS[node % 3];
                    alloc.in_subnet(r, base, 4096)
                };
                let pod_name = match app {
                    App::Postgres => format!("{name}-{i}"),
                    App::AwsNode | App::KubeProxy => {
                        format!("{name}-{}", rng::k8s_suffix(r, 5))
                    }
                    _ => format!("{name}-{rs}-{}", rng::k8s_suffix(r, 5)),
                };
                let (start, end, s_in, e_in) = span(i);
                pods.push(Pod {
                    ns,
                    name: pod_name,
                    uid: rng::uuid(r),
                    node,
                    ip,
                    ip_s: ip_string(ip),
                    app,
                    containers,
                    container_ids: containers.iter().map(|_| rng::hex(r, 64)).collect(),
                    sandbox_id: rng::hex(r, 64),
                    start,
                    end,
                    started_in_window: s_in,
                    stopped_in_window: e_in,
                    replica: i,
                    image: image.to_string(),
                    user_json: String::new(),
                });
            }
        };
        let always = |_: usize| full(ws, we);
        let fe_rs = rng::k8s_suffix(&mut r, 10);
        add_deploy(
            &mut r,
            &mut alloc,
            &mut pods,
            "shop",
            "frontend",
            App::Nginx,
            &["nginx"],
            3 * n,
            &fe_rs,
            "public.ecr.aws/nginx/nginx:1.25.4",
            &always,
        );
        let rollout_at = t0
            + rng::range(&mut r, 8 * 60, 16 * 60) as i64 * NANOS_PER_SEC
            + rng::range(&mut r, 0, 1_000_000_000) as i64;
        let old_rs = rng::k8s_suffix(&mut r, 10);
        let new_rs = rng::k8s_suffix(&mut r, 10);
        let old_image = format!("{ECR}/shop/cart:1.42.2");
        let new_image = format!("{ECR}/shop/cart:1.42.3");
        // Two waves of N pods each, 14 s apart.
        let wave = |i: usize| (i / n) as i64 * 14 * NANOS_PER_SEC;
        add_deploy(
            &mut r,
            &mut alloc,
            &mut pods,
            "shop",
            "cart",
            App::Cart,
            &["cart"],
            2 * n,
            &old_rs,
            &old_image,
            &|i| full(ws, rollout_at + 22 * NANOS_PER_SEC + wave(i)),
        );
        add_deploy(
            &mut r,
            &mut alloc,
            &mut pods,
            "shop",
            "cart",
            App::Cart,
            &["cart"],
            2 * n,
            &new_rs,
            &new_image,
            &|i| full(rollout_at + 2 * NANOS_PER_SEC + wave(i), we),
        );
        let pay_rs = rng::k8s_suffix(&mut r, 10);
        add_deploy(
            &mut r,
            &mut alloc,
            &mut pods,
            "payments",
            "payments-api",
            App::Payments,
            &["payments-api"],
            2 * n,
            &pay_rs,
            &format!("{ECR}/payments/payments-api:3.8.1"),
            &always,
        );
        add_deploy(
            &mut r,
            &mut alloc,
            &mut pods,
            "payments",
            "postgres",
            App::Postgres,
            &["postgres"],
            n,
            "",
            "public.ecr.aws/docker/library/postgres:16.2",
            &always,
        );
        let dns_rs = rng::k8s_suffix(&mut r, 10);
        add_deploy(
            &mut r,
            &mut alloc,
            &mut pods,
            "kube-system",
            "coredns",
            App::CoreDns,
            &["coredns"],
            2 * n,
            &dns_rs,
            "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/coredns:v1.11.1-eksbuild.9",
            &always,
        );
        add_deploy(
            &mut r,
            &mut alloc,
            &mut pods,
            "kube-system",
            "aws-node",
            App::AwsNode,
            &["aws-node"],
            nn,
            "",
            "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni:v1.18.1-eksbuild.3",
            &always,
        );
        add_deploy(
            &mut r,
            &mut alloc,
            &mut pods,
            "kube-system",
            "kube-proxy",
            App::KubeProxy,
            &["kube-proxy"],
            nn,
            "",
            "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/kube-proxy:v1.29.3-minimal-eksbuild.2",
            &always,
        );

        // Service-account tokens bound to their pods.
        let sa_uids: Vec<(App, String)> = [App::AwsNode, App::KubeProxy, App::CoreDns]
            .into_iter()
            .map(|a| (a, rng::uuid(&mut r)))
            .collect();
        for p in pods.iter_mut() {
            let jti = rng::uuid(&mut r);
            let node = &nodes[p.node];
            let user = match p.app {
                App::Payments => sa_user(
                    "payments",
                    "payments-api",
                    &payments_sa_uid,
                    Some((&*p, node)),
                    &jti,
                ),
                App::AwsNode | App::KubeProxy | App::CoreDns => {
                    let sa = match p.app {
                        App::AwsNode => "aws-node",
                        App::KubeProxy => "kube-proxy",
                        _ => "coredns",
                    };
                    let uid = &sa_uids.iter().find(|(a, _)| *a == p.app).map(|x| &x.1);
                    sa_user(
                        "kube-system",
                        sa,
                        uid.map(|s| s.as_str()).unwrap_or(""),
                        Some((&*p, node)),
                        &jti,
                    )
                }
                _ => String::new(),
            };
            p.user_json = user;
        }

        // The attack begins 18 to 24 minutes into the hour; its privileged pod runs on the victim's node.
        let mut ar = rng::keyed(cfg.seed, "attack-timing");
        let attack = AttackTimes::new(&mut ar, t0);
        let victim = pods
            .iter()
            .position(|p| p.app == App::Payments)
            .unwrap_or(0);
        let vnode = pods[victim].node;
        pods.push(Pod {
            ns: "kube-system",
            name: crate::attack::PRIV_POD.to_string(),
            uid: rng::uuid(&mut ar),
            node: vnode,
            ip: nodes[vnode].ip,
            ip_s: nodes[vnode].ip_s.clone(),
            app: App::Debugger,
            containers: &["debug"],
            container_ids: vec![rng::hex(&mut ar, 64)],
            sandbox_id: rng::hex(&mut ar, 64),
            start: attack.pod_runs,
            end: we,
            started_in_window: true,
            stopped_in_window: false,
            replica: 0,
            image: "docker.io/library/alpine:3.19".to_string(),
            user_json: String::new(),
        });

        let endpoint = |r: &mut Rng, alloc: &mut Alloc, base: u32, size: u32| {
            let ip = alloc.in_subnet(r, base, size);
            Endpoint {
                ip,
                eni: format!("eni-0{}", rng::hex(r, 16)),
            }
        };
        let albs = vec![
            endpoint(&mut r, &mut alloc, 0x0a00_6000, 256),
            endpoint(&mut r, &mut alloc, 0x0a00_6100, 256),
        ];
        let cp_enis = vec![
            endpoint(&mut r, &mut alloc, 0x0a00_0000, 4096),
            endpoint(&mut r, &mut alloc, 0x0a00_1000, 4096),
        ];
        let idle_eni = format!("eni-0{}", rng::hex(&mut r, 16));
        let cp_src = (0..2)
            .map(|_| {
                format!(
                    "172.16.{}.{}",
                    rng::range(&mut r, 32, 96),
                    rng::range(&mut r, 2, 250)
                )
            })
            .collect();
        let clients = (0..1500 * n).map(|_| rng::public_ip(&mut r)).collect();
        let scanners = (0..150 * n).map(|_| rng::public_ip(&mut r)).collect();
        let office_ip = rng::public_ip(&mut r);
        Topo {
            seed: cfg.seed,
            scale,
            cluster: cfg.cluster.clone(),
            t0,
            t1,
            nodes,
            pods,
            albs,
            cp_enis,
            idle_eni,
            cp_src,
            bastion: 0x0a00_640a,
            ci_runner: 0x0a00_6425,
            office_ip,
            clients,
            scanners,
            rollout: Rollout {
                at: rollout_at,
                new_rs,
                old_image,
                new_image,
            },
            flow_log_id: format!("fl-0{}", rng::hex(&mut r, 16)),
            attack,
            victim,
        }
    }
}
