//! The kube-apiserver audit log: `audit.k8s.io/v1` Events, one JSON object per line, as an EKS control
//! plane writes them (controllers' leader leases, kubelets, add-ons, people, a CI bot, a rollout).

use crate::fmt::{self, json_escape, Clock};
use crate::rng::{self, Rng};
use crate::stream::{Actors, Sched, Script, SCRIPT};
use crate::topo::{user_json, App, Topo, CP_BUILD, KUBELET_UA};
use quarry_model::time::NANOS_PER_SEC;
use std::sync::Arc;

const MS: i64 = 1_000_000;
const SEC: i64 = NANOS_PER_SEC;

/// The `objectRef` of an event.
#[derive(Clone, Debug)]
pub struct Obj {
    pub resource: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub group: Option<&'static str>,
    pub version: &'static str,
    pub sub: Option<&'static str>,
}

/// A core-group object reference.
pub fn obj(resource: &'static str, ns: Option<&str>, name: Option<&str>) -> Obj {
    Obj {
        resource,
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
        group: None,
        version: "v1",
        sub: None,
    }
}

/// An object reference in a named API group.
pub fn obj_g(
    group: &'static str,
    resource: &'static str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Obj {
    Obj {
        group: Some(group),
        ..obj(resource, ns, name)
    }
}

impl Obj {
    /// The same reference with a subresource.
    pub fn sub(mut self, s: &'static str) -> Obj {
        self.sub = Some(s);
        self
    }
}

/// One audit event, owned (for scripted, rare events).
#[derive(Clone, Debug)]
pub struct Rec {
    pub level: &'static str,
    pub stage: &'static str,
    pub uri: String,
    pub verb: &'static str,
    pub user: String,
    pub ip: String,
    pub ua: String,
    pub obj: Option<Obj>,
    pub code: u16,
    /// Members of a failed `responseStatus` between `metadata` and `code`.
    pub failure: Option<String>,
    /// Authorization decision and JSON-escaped reason; `None` when authentication failed.
    pub authz: Option<(&'static str, String)>,
    /// Further annotation members, each starting with a comma.
    pub extra_ann: String,
    pub req_obj: Option<String>,
    pub resp_obj: Option<String>,
    pub latency: i64,
}

impl Rec {
    /// A successful `Metadata`-level request.
    pub fn new(verb: &'static str, uri: impl Into<String>, user: &str, ip: &str, ua: &str) -> Rec {
        Rec {
            level: "Metadata",
            stage: "ResponseComplete",
            uri: uri.into(),
            verb,
            user: user.to_string(),
            ip: ip.to_string(),
            ua: ua.to_string(),
            obj: None,
            code: 200,
            failure: None,
            authz: Some(("allow", String::new())),
            extra_ann: String::new(),
            req_obj: None,
            resp_obj: None,
            latency: 4 * MS,
        }
    }
    /// Sets the object reference.
    pub fn obj(mut self, o: Obj) -> Rec {
        self.obj = Some(o);
        self
    }
    /// Sets the response code.
    pub fn code(mut self, c: u16) -> Rec {
        self.code = c;
        self
    }
    /// Allowed, with an (unescaped) reason.
    pub fn allow(mut self, reason: &str) -> Rec {
        self.authz = Some(("allow", json_escape(reason)));
        self
    }
    /// Forbidden by RBAC with the apiserver's message.
    pub fn forbid(mut self, message: &str, kind: Option<&str>) -> Rec {
        self.code = 403;
        self.authz = Some(("forbid", String::new()));
        let details = kind
            .map(|k| format!(",\"details\":{{\"kind\":\"{k}\"}}"))
            .unwrap_or_default();
        self.failure = Some(format!(
            "\"status\":\"Failure\",\"message\":\"{}\",\"reason\":\"Forbidden\"{details}",
            json_escape(message)
        ));
        self
    }
    /// A failure other than 403 (`NotFound`, `Unauthorized`...).
    pub fn fail(mut self, code: u16, reason: &str, message: &str) -> Rec {
        self.code = code;
        self.failure = Some(format!(
            "\"status\":\"Failure\",\"message\":\"{}\",\"reason\":\"{reason}\"",
            json_escape(message)
        ));
        self
    }
    /// Sets the level.
    pub fn level(mut self, l: &'static str) -> Rec {
        self.level = l;
        self
    }
    /// Sets the request object (JSON text).
    pub fn req(mut self, body: String) -> Rec {
        self.req_obj = Some(body);
        self
    }
    /// Sets the response object (JSON text).
    pub fn resp(mut self, body: String) -> Rec {
        self.resp_obj = Some(body);
        self
    }
    /// Sets the latency.
    pub fn took(mut self, ms: f64) -> Rec {
        self.latency = (ms * 1e6) as i64;
        self
    }
    /// Adds an annotation.
    pub fn ann(mut self, k: &str, v: &str) -> Rec {
        self.extra_ann
            .push_str(&format!(",\"{}\":\"{}\"", json_escape(k), json_escape(v)));
        self
    }
    fn view(&self) -> Ev<'_> {
        Ev {
            level: self.level,
            stage: self.stage,
            uri: &self.uri,
            verb: self.verb,
            user: &self.user,
            ip: &self.ip,
            ua: &self.ua,
            obj: self.obj.as_ref().map(|o| ObjRef {
                resource: o.resource,
                namespace: o.namespace.as_deref(),
                name: o.name.as_deref(),
                group: o.group,
                version: o.version,
                sub: o.sub,
            }),
            code: self.code,
            failure: self.failure.as_deref(),
            authz: self.authz.as_ref().map(|(d, r)| (*d, r.as_str())),
            extra_ann: &self.extra_ann,
            req_obj: self.req_obj.as_deref(),
            resp_obj: self.resp_obj.as_deref(),
        }
    }
}

/// A borrowed object reference.
#[derive(Clone, Copy)]
pub struct ObjRef<'a> {
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub group: Option<&'a str>,
    pub version: &'a str,
    pub sub: Option<&'a str>,
}

/// A borrowed audit event, as the writer takes it.
pub struct Ev<'a> {
    pub level: &'a str,
    pub stage: &'a str,
    pub uri: &'a str,
    pub verb: &'a str,
    pub user: &'a str,
    pub ip: &'a str,
    pub ua: &'a str,
    pub obj: Option<ObjRef<'a>>,
    pub code: u16,
    pub failure: Option<&'a str>,
    pub authz: Option<(&'a str, &'a str)>,
    pub extra_ann: &'a str,
    pub req_obj: Option<&'a str>,
    pub resp_obj: Option<&'a str>,
}

/// Writes one event line with its receive and completion times.
pub fn write(out: &mut Vec<u8>, clock: &mut Clock, r: &mut Rng, e: &Ev, recv: i64, done: i64) {
    out.extend_from_slice(b"{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"");
    out.extend_from_slice(e.level.as_bytes());
    out.extend_from_slice(b"\",\"auditID\":\"");
    rng::push_uuid(r, out);
    out.extend_from_slice(b"\",\"stage\":\"");
    out.extend_from_slice(e.stage.as_bytes());
    out.extend_from_slice(b"\",\"requestURI\":\"");
    fmt::json_str(out, e.uri);
    out.extend_from_slice(b"\",\"verb\":\"");
    out.extend_from_slice(e.verb.as_bytes());
    out.extend_from_slice(b"\",\"user\":");
    out.extend_from_slice(e.user.as_bytes());
    out.extend_from_slice(b",\"sourceIPs\":[\"");
    out.extend_from_slice(e.ip.as_bytes());
    out.extend_from_slice(b"\"],\"userAgent\":\"");
    fmt::json_str(out, e.ua);
    out.push(b'"');
    if let Some(o) = &e.obj {
        out.extend_from_slice(b",\"objectRef\":{\"resource\":\"");
        out.extend_from_slice(o.resource.as_bytes());
        out.push(b'"');
        if let Some(ns) = o.namespace {
            out.extend_from_slice(b",\"namespace\":\"");
            out.extend_from_slice(ns.as_bytes());
            out.push(b'"');
        }
        if let Some(n) = o.name {
            out.extend_from_slice(b",\"name\":\"");
            fmt::json_str(out, n);
            out.push(b'"');
        }
        if let Some(g) = o.group {
            out.extend_from_slice(b",\"apiGroup\":\"");
            out.extend_from_slice(g.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"apiVersion\":\"");
        out.extend_from_slice(o.version.as_bytes());
        out.push(b'"');
        if let Some(s) = o.sub {
            out.extend_from_slice(b",\"subresource\":\"");
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b",\"responseStatus\":{\"metadata\":{},");
    if let Some(f) = e.failure {
        out.extend_from_slice(f.as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"code\":");
    fmt::num(out, e.code as u64);
    out.push(b'}');
    if let Some(b) = e.req_obj {
        out.extend_from_slice(b",\"requestObject\":");
        out.extend_from_slice(b.as_bytes());
    }
    if let Some(b) = e.resp_obj {
        out.extend_from_slice(b",\"responseObject\":");
        out.extend_from_slice(b.as_bytes());
    }
    out.extend_from_slice(b",\"requestReceivedTimestamp\":\"");
    clock.rfc3339_frac(out, recv, 6);
    out.extend_from_slice(b"\",\"stageTimestamp\":\"");
    clock.rfc3339_frac(out, done, 6);
    out.push(b'"');
    if let Some((decision, reason)) = e.authz {
        out.extend_from_slice(b",\"annotations\":{\"authorization.k8s.io/decision\":\"");
        out.extend_from_slice(decision.as_bytes());
        out.extend_from_slice(b"\",\"authorization.k8s.io/reason\":\"");
        out.extend_from_slice(reason.as_bytes());
        out.push(b'"');
        out.extend_from_slice(e.extra_ann.as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
}

/// The RBAC reason of a ClusterRoleBinding grant.
pub fn crb_reason(binding: &str, role: &str, subject: &str) -> String {
    format!(
        "RBAC: allowed by ClusterRoleBinding \"{binding}\" of ClusterRole \"{role}\" to {subject}"
    )
}

/// The RBAC reason of a RoleBinding grant.
pub fn rb_reason(binding: &str, ns: &str, role_kind: &str, role: &str, subject: &str) -> String {
    format!(
        "RBAC: allowed by RoleBinding \"{binding}/{ns}\" of {role_kind} \"{role}\" to {subject}"
    )
}

/// Identities the benign traffic uses.
struct Users {
    kcm: String,
    sched: String,
    apiserver: String,
    deploy_ctl: String,
    rs_ctl: String,
    eps_ctl: String,
    alice: String,
    admin: String,
    ci: String,
    addon: String,
}

impl Users {
    fn new(r: &mut Rng) -> Users {
        let ctl = |r: &mut Rng, name: &str| {
            user_json(
                &format!("system:serviceaccount:kube-system:{name}"),
                Some(&rng::uuid(r)),
                &[
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
                &[],
            )
        };
        let alice_arn = format!(
            "arn:aws:sts::{}:assumed-role/eks-developers/alice@example.com",
            crate::topo::ACCOUNT
        );
        let admin_arn = format!(
            "arn:aws:iam::{}:user/eks-cluster-creator",
            crate::topo::ACCOUNT
        );
        let ci = crate::topo::sa_user("ci", "deployer", &rng::uuid(r), None, &rng::uuid(r));
        Users {
            kcm: user_json(
                "system:kube-controller-manager",
                None,
                &["system:authenticated"],
                &[],
            ),
            sched: user_json(
                "system:kube-scheduler",
                None,
                &["system:authenticated"],
                &[],
            ),
            apiserver: user_json(
                "system:apiserver",
                Some(&rng::uuid(r)),
                &["system:authenticated", "system:masters"],
                &[],
            ),
            deploy_ctl: ctl(r, "deployment-controller"),
            rs_ctl: ctl(r, "replicaset-controller"),
            eps_ctl: ctl(r, "endpointslice-controller"),
            alice: user_json(
                "alice@example.com",
                Some(&format!(
                    "aws-iam-authenticator:{}:AROAYZEXAMPLEDEV5XQ2M",
                    crate::topo::ACCOUNT
                )),
                &["developers", "system:authenticated"],
                &[
                    ("accessKeyId", &format!("ASIA{}", rng::upper(r, 16))),
                    ("arn", &alice_arn),
                    (
                        "canonicalArn",
                        &format!("arn:aws:iam::{}:role/eks-developers", crate::topo::ACCOUNT),
                    ),
                    ("principalId", "AROAYZEXAMPLEDEV5XQ2M"),
                    ("sessionName", "alice@example.com"),
                ],
            ),
            admin: user_json(
                "kubernetes-admin",
                Some(&format!(
                    "aws-iam-authenticator:{}:AIDAYZEXAMPLEADMIN7H3",
                    crate::topo::ACCOUNT
                )),
                &["system:masters", "system:authenticated"],
                &[
                    ("accessKeyId", &format!("AKIA{}", rng::upper(r, 16))),
                    ("arn", &admin_arn),
                    ("canonicalArn", &admin_arn),
                    ("principalId", "AIDAYZEXAMPLEADMIN7H3"),
                ],
            ),
            ci,
            addon: user_json("eks:addon-manager", None, &["system:authenticated"], &[]),
        }
    }
}

#[derive(Clone, Copy)]
enum Actor {
    KcmLease,
    SchedLease,
    ApiserverLease(usize),
    NodeLease(usize),
    NodeGet(usize),
    NodeStatus(usize),
    KubeletWatch(usize),
    AwsNode(usize),
    ProxyWatch(usize),
    DnsWatch(usize),
    PaymentsConfig(usize),
    AddonManager,
}

/// The audit log file.
pub struct AuditStream {
    topo: Arc<Topo>,
    r: Rng,
    clock: Clock,
    sched: Sched,
    actors: Vec<Actor>,
    script: Script<Rec>,
    last_recv: i64,
    last_done: i64,
    uri: String,
    users: Users,
    apiserver_ids: [String; 2],
    kcm_reason: String,
    sched_reason: String,
    aws_node_reason: String,
    proxy_reason: String,
    dns_reason: String,
    pay_reason: String,
    addon_reason: String,
    kcm_ua: String,
    sched_ua: String,
    apiserver_ua: String,
}

impl AuditStream {
    /// The audit log of the cluster, with the attack's events in `attack`.
    pub fn new(topo: Arc<Topo>, attack: Vec<(i64, Rec)>) -> AuditStream {
        let mut r = rng::keyed(topo.seed, "audit");
        let users = Users::new(&mut r);
        let mut sched = Sched::new(topo.t1);
        let mut actors = Vec::new();
        let mut add = |sched: &mut Sched, r: &mut Rng, a: Actor, period: i64| {
            let first = topo.t0 + rng::range(r, 0, period as u64) as i64;
            sched.at(first, actors.len() as u32);
            actors.push(a);
        };
        add(&mut sched, &mut r, Actor::KcmLease, 2 * SEC);
        add(&mut sched, &mut r, Actor::SchedLease, 2 * SEC);
        add(&mut sched, &mut r, Actor::ApiserverLease(0), 10 * SEC);
        add(&mut sched, &mut r, Actor::ApiserverLease(1), 10 * SEC);
        add(&mut sched, &mut r, Actor::AddonManager, 900 * SEC);
        for i in 0..topo.nodes.len() {
            add(&mut sched, &mut r, Actor::NodeLease(i), 10 * SEC);
            add(&mut sched, &mut r, Actor::NodeGet(i), 10 * SEC);
            add(&mut sched, &mut r, Actor::NodeStatus(i), 300 * SEC);
            for _ in 0..6 {
                add(&mut sched, &mut r, Actor::KubeletWatch(i), 480 * SEC);
            }
        }
        for (i, p) in topo.pods.iter().enumerate() {
            match p.app {
                App::AwsNode => add(&mut sched, &mut r, Actor::AwsNode(i), 60 * SEC),
                App::KubeProxy => {
                    add(&mut sched, &mut r, Actor::ProxyWatch(i), 450 * SEC);
                    add(&mut sched, &mut r, Actor::ProxyWatch(i), 450 * SEC);
                }
                App::CoreDns => {
                    for _ in 0..3 {
                        add(&mut sched, &mut r, Actor::DnsWatch(i), 450 * SEC);
                    }
                }
                App::Payments => add(&mut sched, &mut r, Actor::PaymentsConfig(i), 30 * SEC),
                _ => {}
            }
        }
        let mut items = attack;
        benign_script(&topo, &users, &mut r, &mut items);
        let script = Script::new(items);
        if let Some(t) = script.next_time() {
            sched.at(t, SCRIPT);
        }
        let apiserver_ids = [
            format!("apiserver-{}", rng::alnum(&mut r, 26).to_lowercase()),
            format!("apiserver-{}", rng::alnum(&mut r, 26).to_lowercase()),
        ];
        let sa = |n: &str| format!("ServiceAccount \"{n}/kube-system\"");
        AuditStream {
            kcm_reason: json_escape(&crb_reason(
                "system:kube-controller-manager",
                "system:kube-controller-manager",
                "User \"system:kube-controller-manager\"",
            )),
            sched_reason: json_escape(&crb_reason(
                "system:kube-scheduler",
                "system:kube-scheduler",
                "User \"system:kube-scheduler\"",
            )),
            aws_node_reason: json_escape(&crb_reason("aws-node", "aws-node", &sa("aws-node"))),
            proxy_reason: json_escape(&crb_reason(
                "eks:kube-proxy",
                "system:node-proxier",
                &sa("kube-proxy"),
            )),
            dns_reason: json_escape(&crb_reason(
                "system:coredns",
                "system:coredns",
                &sa("coredns"),
            )),
            pay_reason: json_escape(&rb_reason(
                "payments-api",
                "payments",
                "Role",
                "payments-api",
                "ServiceAccount \"payments-api/payments\"",
            )),
            addon_reason: json_escape(&crb_reason(
                "eks:addon-manager",
                "eks:addon-manager",
                "User \"eks:addon-manager\"",
            )),
            kcm_ua: format!("kube-controller-manager/{CP_BUILD}/leader-election"),
            sched_ua: format!("kube-scheduler/{CP_BUILD}/leader-election"),
            apiserver_ua: format!("kube-apiserver/{CP_BUILD}"),
            topo,
            r,
            clock: Clock::default(),
            sched,
            actors,
            script,
            last_recv: i64::MIN,
            last_done: i64::MIN,
            uri: String::with_capacity(256),
            users,
            apiserver_ids,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, t: i64, latency: i64, e: &Ev) {
        let recv = t.max(self.last_recv);
        let done = (recv + latency).max(self.last_done);
        self.last_recv = recv;
        self.last_done = done;
        write(out, &mut self.clock, &mut self.r, e, recv, done);
    }

    fn fire(&mut self, t: i64, a: u32, out: &mut Vec<u8>) {
        if a == SCRIPT {
            if let Some(rec) = self.script.take() {
                let rec = rec.clone();
                self.emit(out, t, rec.latency, &rec.view());
            }
            if let Some(nt) = self.script.next_time() {
                self.sched.at(nt, SCRIPT);
            }
            return;
        }
        let topo = Arc::clone(&self.topo);
        let actor = self.actors[a as usize];
        let r = &mut self.r;
        let lat = |r: &mut Rng, lo: f64, hi: f64| ((lo + (hi - lo) * rng::unit(r)) * 1e6) as i64;
        self.uri.clear();
        let next;
        let mut ev = Ev {
            level: "Metadata",
            stage: "ResponseComplete",
            uri: "",
            verb: "get",
            user: "",
            ip: "",
            ua: "",
            obj: None,
            code: 200,
            failure: None,
            authz: Some(("allow", "")),
            extra_ann: "",
            req_obj: None,
            resp_obj: None,
        };
        let latency;
        match actor {
            Actor::KcmLease | Actor::SchedLease => {
                let kcm = matches!(actor, Actor::KcmLease);
                let name = if kcm {
                    "kube-controller-manager"
                } else {
                    "kube-scheduler"
                };
                self.uri
                    .push_str("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/");
                self.uri.push_str(name);
                self.uri.push_str("?timeout=5s");
                ev.verb = "update";
                ev.user = if kcm {
                    &self.users.kcm
                } else {
                    &self.users.sched
                };
                ev.ip = &topo.cp_src[if kcm { 0 } else { 1 }];
                ev.ua = if kcm { &self.kcm_ua } else { &self.sched_ua };
                ev.obj = Some(ObjRef {
                    resource: "leases",
                    namespace: Some("kube-system"),
                    name: Some(name),
                    group: Some("coordination.k8s.io"),
                    version: "v1",
                    sub: None,
                });
                ev.authz = Some((
                    "allow",
                    if kcm {
                        &self.kcm_reason
                    } else {
                        &self.sched_reason
                    },
                ));
                latency = lat(r, 2.5, 9.0);
                next = t + rng::jitter(r, 2 * SEC, 0.03);
            }
            Actor::ApiserverLease(i) => {
                self.uri
                    .push_str("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/");
                self.uri.push_str(&self.apiserver_ids[i]);
                ev.verb = "update";
                ev.user = &self.users.apiserver;
                ev.ip = "::1";
                ev.ua = &self.apiserver_ua;
                ev.obj = Some(ObjRef {
                    resource: "leases",
                    namespace: Some("kube-system"),
                    name: Some(&self.apiserver_ids[i]),
                    group: Some("coordination.k8s.io"),
                    version: "v1",
                    sub: None,
                });
                latency = lat(r, 2.0, 7.0);
                next = t + rng::jitter(r, 10 * SEC, 0.02);
            }
            Actor::NodeLease(i) => {
                let n = &topo.nodes[i];
                self.uri
                    .push_str("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/");
                self.uri.push_str(&n.name);
                self.uri.push_str("?timeout=10s");
                ev.verb = "update";
                ev.user = &n.user_json;
                ev.ip = &n.ip_s;
                ev.ua = KUBELET_UA;
                ev.obj = Some(ObjRef {
                    resource: "leases",
                    namespace: Some("kube-node-lease"),
                    name: Some(&n.name),
                    group: Some("coordination.k8s.io"),
                    version: "v1",
                    sub: None,
                });
                latency = lat(r, 2.0, 8.0);
                next = t + rng::jitter(r, 10 * SEC, 0.02);
            }
            Actor::NodeGet(i) => {
                let n = &topo.nodes[i];
                self.uri.push_str("/api/v1/nodes/");
                self.uri.push_str(&n.name);
                self.uri.push_str("?resourceVersion=0&timeout=10s");
                ev.user = &n.user_json;
                ev.ip = &n.ip_s;
                ev.ua = KUBELET_UA;
                ev.obj = Some(ObjRef {
                    resource: "nodes",
                    namespace: None,
                    name: Some(&n.name),
                    group: None,
                    version: "v1",
                    sub: None,
                });
                latency = lat(r, 0.4, 1.8);
                next = t + rng::jitter(r, 10 * SEC, 0.02);
            }
            Actor::NodeStatus(i) => {
                let n = &topo.nodes[i];
                self.uri.push_str("/api/v1/nodes/");
                self.uri.push_str(&n.name);
                self.uri.push_str("/status?timeout=10s");
                ev.verb = "patch";
                ev.user = &n.user_json;
                ev.ip = &n.ip_s;
                ev.ua = KUBELET_UA;
                ev.obj = Some(ObjRef {
                    resource: "nodes",
                    namespace: None,
                    name: Some(&n.name),
                    group: None,
                    version: "v1",
                    sub: Some("status"),
                });
                latency = lat(r, 4.0, 15.0);
                next = t + rng::jitter(r, 300 * SEC, 0.01);
            }
            Actor::KubeletWatch(i) => {
                let n = &topo.nodes[i];
                let which = rng::range(r, 0, 6);
                let rv = rng::range(r, 4_000_000, 4_400_000);
                let timeout = rng::range(r, 300, 600);
                let (res, group, path): (&str, Option<&str>, String) = match which {
                    0 => {
                        let ns = ["shop", "payments", "kube-system"][rng::range(r, 0, 3) as usize];
                        (
                            "configmaps",
                            None,
                            format!("/api/v1/namespaces/{ns}/configmaps?allowWatchBookmarks=true&fieldSelector=metadata.name%3Dkube-root-ca.crt"),
                        )
                    }
                    1 => (
                        "pods",
                        None,
                        format!("/api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName%3D{}", n.name),
                    ),
                    2 => (
                        "nodes",
                        None,
                        format!("/api/v1/nodes?allowWatchBookmarks=true&fieldSelector=metadata.name%3D{}", n.name),
                    ),
                    3 => ("services", None, "/api/v1/services?allowWatchBookmarks=true".into()),
                    4 => (
                        "csidrivers",
                        Some("storage.k8s.io"),
                        "/apis/storage.k8s.io/v1/csidrivers?allowWatchBookmarks=true".into(),
                    ),
                    _ => (
                        "runtimeclasses",
                        Some("node.k8s.io"),
                        "/apis/node.k8s.io/v1/runtimeclasses?allowWatchBookmarks=true".into(),
                    ),
                };
                self.uri.push_str(&path);
                self.uri.push_str(&format!(
                    "&resourceVersion={rv}&timeout={}m{}s&timeoutSeconds={timeout}&watch=true",
                    timeout / 60,
                    timeout % 60
                ));
                ev.stage = "ResponseStarted";
                ev.verb = "watch";
                ev.user = &n.user_json;
                ev.ip = &n.ip_s;
                ev.ua = KUBELET_UA;
                let ns_of = if which == 0 {
                    self.uri.split('/').nth(4)
                } else {
                    None
                };
                ev.obj = Some(ObjRef {
                    resource: res,
                    namespace: ns_of,
                    name: None,
                    group,
                    version: "v1",
                    sub: None,
                });
                latency = lat(r, 0.3, 1.2);
                next = t + timeout as i64 * SEC + between(r, 0, 400);
            }
            Actor::AwsNode(i) => {
                let p = &topo.pods[i];
                let n = &topo.nodes[p.node];
                self.uri.push_str("/api/v1/nodes/");
                self.uri.push_str(&n.name);
                ev.user = &p.user_json;
                ev.ip = &n.ip_s;
                ev.ua = "aws-k8s-agent/v0.0.0 (linux/amd64) kubernetes/$Format";
                ev.obj = Some(ObjRef {
                    resource: "nodes",
                    namespace: None,
                    name: Some(&n.name),
                    group: None,
                    version: "v1",
                    sub: None,
                });
                ev.authz = Some(("allow", &self.aws_node_reason));
                latency = lat(r, 1.0, 4.0);
                next = t + rng::jitter(r, 60 * SEC, 0.05);
            }
            Actor::ProxyWatch(i) | Actor::DnsWatch(i) => {
                let p = &topo.pods[i];
                let proxy = matches!(actor, Actor::ProxyWatch(_));
                let timeout = rng::range(r, 300, 600);
                let rv = rng::range(r, 4_000_000, 4_400_000);
                let (res, group, path) = match rng::range(r, 0, if proxy { 2 } else { 3 }) {
                    0 => (
                        "endpointslices",
                        Some("discovery.k8s.io"),
                        "/apis/discovery.k8s.io/v1/endpointslices?allowWatchBookmarks=true",
                    ),
                    1 => (
                        "services",
                        None,
                        "/api/v1/services?allowWatchBookmarks=true",
                    ),
                    _ => (
                        "namespaces",
                        None,
                        "/api/v1/namespaces?allowWatchBookmarks=true",
                    ),
                };
                self.uri.push_str(path);
                if proxy && res != "namespaces" {
                    self.uri.push_str("&labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name");
                }
                self.uri.push_str(&format!(
                    "&resourceVersion={rv}&timeout={}m{}s&timeoutSeconds={timeout}&watch=true",
                    timeout / 60,
                    timeout % 60
                ));
                ev.stage = "ResponseStarted";
                ev.verb = "watch";
                ev.user = &p.user_json;
                ev.ip = &p.ip_s;
                ev.ua = if proxy {
                    "kube-proxy/v1.29.3 (linux/amd64) kubernetes/ae9a62a"
                } else {
                    "coredns/v0.0.0 (linux/amd64) kubernetes/$Format"
                };
                ev.obj = Some(ObjRef {
                    resource: res,
                    namespace: None,
                    name: None,
                    group,
                    version: "v1",
                    sub: None,
                });
                ev.authz = Some((
                    "allow",
                    if proxy {
                        &self.proxy_reason
                    } else {
                        &self.dns_reason
                    },
                ));
                latency = lat(r, 0.3, 1.0);
                next = t + timeout as i64 * SEC + between(r, 0, 300);
            }
            Actor::PaymentsConfig(i) => {
                let p = &topo.pods[i];
                self.uri
                    .push_str("/api/v1/namespaces/payments/configmaps/payments-api");
                ev.user = &p.user_json;
                ev.ip = &p.ip_s;
                ev.ua = "fabric8-kubernetes-client/6.10.0";
                ev.obj = Some(ObjRef {
                    resource: "configmaps",
                    namespace: Some("payments"),
                    name: Some("payments-api"),
                    group: None,
                    version: "v1",
                    sub: None,
                });
                ev.authz = Some(("allow", &self.pay_reason));
                latency = lat(r, 1.0, 3.5);
                next = t + rng::jitter(r, 30 * SEC, 0.02);
            }
            Actor::AddonManager => {
                let which = rng::range(r, 0, 3);
                let (res, name) = match which {
                    0 => ("daemonsets", "aws-node"),
                    1 => ("daemonsets", "kube-proxy"),
                    _ => ("deployments", "coredns"),
                };
                self.uri.push_str(&format!(
                    "/apis/apps/v1/namespaces/kube-system/{res}/{name}?fieldManager=eks&force=true"
                ));
                ev.verb = "patch";
                ev.user = &self.users.addon;
                ev.ip = &topo.cp_src[0];
                ev.ua = "eks-addon-manager/v0.0.0 (linux/amd64) kubernetes/$Format";
                ev.obj = Some(ObjRef {
                    resource: res,
                    namespace: Some("kube-system"),
                    name: Some(name),
                    group: Some("apps"),
                    version: "v1",
                    sub: None,
                });
                ev.authz = Some(("allow", &self.addon_reason));
                latency = lat(r, 6.0, 20.0);
                next = t + rng::jitter(r, 300 * SEC, 0.1);
            }
        }
        ev.uri = &self.uri;
        let recv = t.max(self.last_recv);
        let done = (recv + latency).max(self.last_done);
        self.last_recv = recv;
        self.last_done = done;
        write(out, &mut self.clock, &mut self.r, &ev, recv, done);
        self.sched.at(next, a);
    }
}

impl Actors for AuditStream {
    fn sched(&mut self) -> &mut Sched {
        &mut self.sched
    }

    fn fire(&mut self, t: i64, a: u32, out: &mut Vec<u8>) {
        AuditStream::fire(self, t, a, out)
    }
}

fn pod_spec_json(
    name_or_generate: (&str, &str),
    ns: &str,
    labels: &str,
    owner: &str,
    containers: &str,
    extra_spec: &str,
) -> String {
    format!(
        "{{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{{\"{}\":\"{}\",\"namespace\":\"{ns}\",\"creationTimestamp\":null,\"labels\":{{{labels}}}{owner}}},\"spec\":{{{extra_spec}\"containers\":[{containers}],\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30,\"dnsPolicy\":\"ClusterFirst\",\"securityContext\":{{}},\"schedulerName\":\"default-scheduler\"}},\"status\":{{}}}}",
        name_or_generate.0, name_or_generate.1
    )
}

/// A uniform time between `lo` and `hi` milliseconds, in nanoseconds.
fn between(r: &mut Rng, lo: u64, hi: u64) -> i64 {
    rng::range(r, lo * MS as u64, hi * MS as u64) as i64
}

/// The benign scripted events: people at work, the CI pipeline and the rollout it starts.
fn benign_script(t: &Topo, u: &Users, r: &mut Rng, items: &mut Vec<(i64, Rec)>) {
    let alice_ip = fmt::ip_string(t.office_ip);
    let bastion = fmt::ip_string(t.bastion);
    let runner = fmt::ip_string(t.ci_runner);
    let alice_ua = "kubectl/v1.29.2 (darwin/arm64) kubernetes/4b8e819";
    let admin_ua = "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625";
    let ci_ua = "kubectl/v1.28.4 (linux/amd64) kubernetes/bae2c62";
    let discovery = "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\"";
    let alice_rb = |ns: &str| {
        rb_reason(
            "developers-edit",
            ns,
            "ClusterRole",
            "edit",
            "Group \"developers\"",
        )
    };
    let masters = "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"system:masters\"";
    let span = (t.t1 - t.t0) as u64;
    let at = |r: &mut Rng, lo: f64, hi: f64| {
        t.t0 + (span as f64 * (lo + (hi - lo) * rng::unit(r))) as i64
    };
    let shop_pods: Vec<&crate::topo::Pod> = t
        .pods
        .iter()
        .filter(|p| p.ns == "shop" && p.app == App::Cart)
        .collect();

    // alice@example.com: three short kubectl sessions from the office; one after the rollout.
    let sessions = [
        at(r, 0.02, 0.12),
        t.rollout.at + between(r, 60_000, 150_000),
        at(r, 0.6, 0.9),
    ];
    for (k, &s) in sessions.iter().enumerate() {
        let mut c = s;
        let mut push = |c: &mut i64, rec: Rec, gap_ms: u64| {
            items.push((*c, rec));
            *c += between(r, gap_ms / 2, gap_ms * 3 / 2 + 1);
        };
        for p in ["/api?timeout=32s", "/apis?timeout=32s"] {
            push(
                &mut c,
                Rec::new("get", p, &u.alice, &alice_ip, alice_ua)
                    .allow(discovery)
                    .took(2.0),
                40,
            );
        }
        let live: Vec<&&crate::topo::Pod> = shop_pods.iter().filter(|p| p.alive(s)).collect();
        let Some(pod) = live.first() else { continue };
        push(
            &mut c,
            Rec::new(
                "list",
                "/api/v1/namespaces/shop/pods?limit=500",
                &u.alice,
                &alice_ip,
                alice_ua,
            )
            .obj(obj("pods", Some("shop"), None))
            .allow(&alice_rb("shop"))
            .took(9.0),
            20_000,
        );
        if k == 1 {
            push(
                &mut c,
                Rec::new(
                    "get",
                    "/apis/apps/v1/namespaces/shop/deployments/cart",
                    &u.alice,
                    &alice_ip,
                    alice_ua,
                )
                .obj(obj_g("apps", "deployments", Some("shop"), Some("cart")))
                .allow(&alice_rb("shop"))
                .took(3.0),
                2_000,
            );
            push(
                &mut c,
                Rec::new(
                    "watch",
                    "/apis/apps/v1/namespaces/shop/deployments?fieldSelector=metadata.name%3Dcart&resourceVersion=4182234&watch=true",
                    &u.alice,
                    &alice_ip,
                    alice_ua,
                )
                .obj(obj_g("apps", "deployments", Some("shop"), None))
                .allow(&alice_rb("shop"))
                .took(0.6),
                30_000,
            );
        }
        push(
            &mut c,
            Rec::new(
                "get",
                format!("/api/v1/namespaces/shop/pods/{}", pod.name),
                &u.alice,
                &alice_ip,
                alice_ua,
            )
            .obj(obj("pods", Some("shop"), Some(&pod.name)))
            .allow(&alice_rb("shop"))
            .took(2.5),
            300,
        );
        push(
            &mut c,
            Rec::new(
                "get",
                format!(
                    "/api/v1/namespaces/shop/pods/{}/log?container=cart&tailLines=200",
                    pod.name
                ),
                &u.alice,
                &alice_ip,
                alice_ua,
            )
            .obj(obj("pods", Some("shop"), Some(&pod.name)).sub("log"))
            .allow(&alice_rb("shop"))
            .took(38.0),
            25_000,
        );
        if k == 0 {
            push(
                &mut c,
                Rec::new(
                    "list",
                    format!("/api/v1/namespaces/shop/events?fieldSelector=involvedObject.name%3D{}%2CinvolvedObject.namespace%3Dshop%2CinvolvedObject.uid%3D{}", pod.name, pod.uid),
                    &u.alice,
                    &alice_ip,
                    alice_ua,
                )
                .obj(obj("events", Some("shop"), None))
                .allow(&alice_rb("shop"))
                .took(4.0),
                30_000,
            );
            push(
                &mut c,
                Rec::new(
                    "list",
                    "/api/v1/namespaces/kube-system/pods?limit=500",
                    &u.alice,
                    &alice_ip,
                    alice_ua,
                )
                .obj(obj("pods", Some("kube-system"), None))
                .forbid(
                    "pods is forbidden: User \"alice@example.com\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\"",
                    Some("pods"),
                )
                .took(1.5),
                20_000,
            );
        }
        if k == 2 {
            // A developer's routine exec: the benign look-alike of the attack's step 3.
            push(
                &mut c,
                Rec::new(
                    "create",
                    format!("/api/v1/namespaces/shop/pods/{}/exec?command=curl&command=-s&command=localhost%3A8080%2Factuator%2Fhealth&container=cart&stderr=true&stdout=true", pod.name),
                    &u.alice,
                    &alice_ip,
                    alice_ua,
                )
                .obj(obj("pods", Some("shop"), Some(&pod.name)).sub("exec"))
                .code(101)
                .allow(&alice_rb("shop"))
                .took(1450.0),
                10_000,
            );
        }
    }

    // kubernetes-admin: node maintenance checks from the bastion.
    for (k, s) in [at(r, 0.3, 0.45), at(r, 0.8, 0.95)].into_iter().enumerate() {
        let node = &t.nodes[rng::range(r, 0, t.nodes.len() as u64) as usize];
        let mut c = s;
        let mut push = |c: &mut i64, rec: Rec| {
            items.push((*c, rec));
            *c += between(r, 500, 15_000);
        };
        push(
            &mut c,
            Rec::new(
                "list",
                "/api/v1/nodes?limit=500",
                &u.admin,
                &bastion,
                admin_ua,
            )
            .obj(obj("nodes", None, None))
            .allow(masters)
            .took(6.0),
        );
        push(
            &mut c,
            Rec::new(
                "get",
                format!("/api/v1/nodes/{}", node.name),
                &u.admin,
                &bastion,
                admin_ua,
            )
            .obj(obj("nodes", None, Some(&node.name)))
            .allow(masters)
            .took(2.0),
        );
        push(
            &mut c,
            Rec::new(
                "list",
                format!(
                    "/api/v1/pods?fieldSelector=spec.nodeName%3D{}%2Cstatus.phase%21%3DFailed%2Cstatus.phase%21%3DSucceeded&limit=500",
                    node.name
                ),
                &u.admin,
                &bastion,
                admin_ua,
            )
            .obj(obj("pods", None, None))
            .allow(masters)
            .took(8.0),
        );
        push(
            &mut c,
            Rec::new(
                "get",
                "/apis/metrics.k8s.io/v1beta1/nodes",
                &u.admin,
                &bastion,
                admin_ua,
            )
            .obj(obj_g("metrics.k8s.io", "nodes", None, None))
            .fail(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .allow(masters)
            .took(1.0),
        );
        if k == 1 {
            push(
                &mut c,
                Rec::new(
                    "list",
                    "/api/v1/pods?limit=500",
                    &u.admin,
                    &bastion,
                    admin_ua,
                )
                .obj(obj("pods", None, None))
                .allow(masters)
                .took(21.0),
            );
        }
    }

    // The CI deployer applies manifests every ~15 minutes; one run ships a new cart image.
    let ci_rb = |ns: &str| {
        rb_reason(
            "deployer",
            ns,
            "ClusterRole",
            "ci-deployer",
            "ServiceAccount \"deployer/ci\"",
        )
    };
    let mut runs = vec![t.rollout.at - 3 * SEC];
    let mut c = t.t0 + between(r, 60_000, 240_000);
    while c < t.t1 - 60 * SEC {
        if (c - t.rollout.at).abs() > 120 * SEC {
            runs.push(c);
        }
        c += between(r, 13 * 60_000, 17 * 60_000);
    }
    for run in runs {
        let ships = run == t.rollout.at - 3 * SEC;
        let mut c = run - 2500 * MS;
        for p in ["/api?timeout=32s", "/apis?timeout=32s"] {
            items.push((
                c,
                Rec::new("get", p, &u.ci, &runner, ci_ua)
                    .allow(discovery)
                    .took(2.0),
            ));
            c += between(r, 20, 80);
        }
        let objs: [(&str, &str, &str, &str); 5] = [
            ("shop", "deployments", "frontend", "apps"),
            ("shop", "services", "frontend", ""),
            ("shop", "configmaps", "cart-config", ""),
            ("payments", "deployments", "payments-api", "apps"),
            ("shop", "deployments", "cart", "apps"),
        ];
        for (ns, res, name, group) in objs {
            let (prefix, g) = if group.is_empty() {
                ("/api/v1".to_string(), None)
            } else {
                (format!("/apis/{group}/v1"), Some("apps"))
            };
            let uri = format!(
                "{prefix}/namespaces/{ns}/{res}/{name}?fieldManager=kubectl&fieldValidation=Strict&force=false"
            );
            let o = Obj {
                group: g,
                ..obj(
                    match res {
                        "deployments" => "deployments",
                        "services" => "services",
                        _ => "configmaps",
                    },
                    Some(ns),
                    Some(name),
                )
            };
            let mut rec = Rec::new("patch", uri, &u.ci, &runner, ci_ua)
                .obj(o)
                .allow(&ci_rb(ns))
                .took(9.0 + 10.0 * rng::unit(r));
            if res == "deployments" {
                let image = if name == "cart" {
                    if ships || run > t.rollout.at {
                        t.rollout.new_image.clone()
                    } else {
                        t.rollout.old_image.clone()
                    }
                } else if name == "frontend" {
                    "public.ecr.aws/nginx/nginx:1.25.4".to_string()
                } else {
                    format!("{}/payments/payments-api:3.8.1", crate::topo::ECR)
                };
                rec = rec.level("Request").req(format!(
                    "{{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{ns}\",\"labels\":{{\"app\":\"{name}\"}}}},\"spec\":{{\"template\":{{\"spec\":{{\"containers\":[{{\"name\":\"{}\",\"image\":\"{image}\"}}]}}}}}}}}",
                    if name == "frontend" { "nginx" } else { name }
                ));
            }
            items.push((c, rec));
            c += between(r, 60, 400);
        }
    }

    // The rollout of the new cart ReplicaSet.
    let ro = &t.rollout;
    let dep_ua = format!("kube-controller-manager/{CP_BUILD}/system:serviceaccount:kube-system:deployment-controller");
    let rs_ua = format!("kube-controller-manager/{CP_BUILD}/system:serviceaccount:kube-system:replicaset-controller");
    let eps_ua = format!("kube-controller-manager/{CP_BUILD}/system:serviceaccount:kube-system:endpointslice-controller");
    let sch_ua = format!("kube-scheduler/{CP_BUILD}/scheduler");
    let cp = &t.cp_src[0];
    let sa_subject = |n: &str| format!("ServiceAccount \"{n}/kube-system\"");
    let ctl_reason = |n: &str| {
        crb_reason(
            &format!("system:controller:{n}"),
            &format!("system:controller:{n}"),
            &sa_subject(n),
        )
    };
    let new_rs_name = format!("cart-{}", ro.new_rs);
    items.push((
        ro.at + 40 * MS,
        Rec::new(
            "create",
            "/apis/apps/v1/namespaces/shop/replicasets",
            &u.deploy_ctl,
            cp,
            &dep_ua,
        )
        .obj(obj_g(
            "apps",
            "replicasets",
            Some("shop"),
            Some(&new_rs_name),
        ))
        .code(201)
        .allow(&ctl_reason("deployment-controller"))
        .took(11.0),
    ));
    let eps_name = format!("cart-{}", rng::k8s_suffix(r, 5));
    for (i, p) in t.pods.iter().enumerate() {
        if p.app != App::Cart {
            continue;
        }
        let node = &t.nodes[p.node];
        if p.started_in_window {
            let created = p.start - 1900 * MS;
            let labels = format!("\"app\":\"cart\",\"pod-template-hash\":\"{}\"", ro.new_rs);
            let owner = format!(
                ",\"ownerReferences\":[{{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":\"{new_rs_name}\",\"uid\":\"{}\",\"controller\":true,\"blockOwnerDeletion\":true}}]",
                rng::uuid(r)
            );
            let containers = format!(
                "{{\"name\":\"cart\",\"image\":\"{}\",\"ports\":[{{\"containerPort\":8080,\"protocol\":\"TCP\"}}],\"resources\":{{\"limits\":{{\"memory\":\"768Mi\"}},\"requests\":{{\"cpu\":\"250m\",\"memory\":\"768Mi\"}}}},\"readinessProbe\":{{\"httpGet\":{{\"path\":\"/actuator/health/readiness\",\"port\":8080,\"scheme\":\"HTTP\"}},\"periodSeconds\":10}},\"securityContext\":{{\"runAsNonRoot\":true,\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true}},\"imagePullPolicy\":\"IfNotPresent\"}}",
                ro.new_image
            );
            let body = pod_spec_json(
                ("generateName", &format!("{new_rs_name}-")),
                "shop",
                &labels,
                &owner,
                &containers,
                "\"serviceAccountName\":\"default\",",
            );
            let resp = pod_spec_json(
                ("name", &p.name),
                "shop",
                &labels,
                &owner,
                &containers,
                "\"serviceAccountName\":\"default\",",
            )
            .replacen(
                "\"creationTimestamp\":null",
                &format!(
                    "\"uid\":\"{}\",\"resourceVersion\":\"{}\",\"creationTimestamp\":\"{}\"",
                    p.uid,
                    4_200_000 + i * 7,
                    fmt::string(|o| Clock::default().rfc3339_nano(o, created - created % SEC))
                ),
                1,
            );
            items.push((
                created,
                Rec::new(
                    "create",
                    "/api/v1/namespaces/shop/pods",
                    &u.rs_ctl,
                    cp,
                    &rs_ua,
                )
                .obj(obj("pods", Some("shop"), Some(&p.name)))
                .level("RequestResponse")
                .req(body)
                .resp(resp)
                .code(201)
                .allow(&ctl_reason("replicaset-controller"))
                .ann(
                    "pod-security.kubernetes.io/enforce-policy",
                    "privileged:latest",
                )
                .took(14.0),
            ));
            items.push((
                created + 60 * MS,
                Rec::new(
                    "create",
                    format!("/api/v1/namespaces/shop/pods/{}/binding", p.name),
                    &u.sched,
                    &t.cp_src[1],
                    &sch_ua,
                )
                .obj(obj("pods", Some("shop"), Some(&p.name)).sub("binding"))
                .code(201)
                .allow(&crb_reason(
                    "system:kube-scheduler",
                    "system:kube-scheduler",
                    "User \"system:kube-scheduler\"",
                ))
                .took(6.0),
            ));
            items.push((
                p.start - 1200 * MS,
                Rec::new(
                    "create",
                    "/api/v1/namespaces/shop/serviceaccounts/default/token",
                    &node.user_json,
                    &node.ip_s,
                    KUBELET_UA,
                )
                .obj(obj("serviceaccounts", Some("shop"), Some("default")).sub("token"))
                .code(201)
                .took(4.0),
            ));
            for (dt, ready) in [(1500, false), (9800, true)] {
                items.push((
                    p.start + dt * MS,
                    Rec::new(
                        "patch",
                        format!("/api/v1/namespaces/shop/pods/{}/status", p.name),
                        &node.user_json,
                        &node.ip_s,
                        KUBELET_UA,
                    )
                    .obj(obj("pods", Some("shop"), Some(&p.name)).sub("status"))
                    .took(7.0),
                ));
                if ready {
                    items.push((
                        p.start + (dt + 30) * MS,
                        Rec::new(
                            "update",
                            format!("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices/{eps_name}"),
                            &u.eps_ctl,
                            cp,
                            &eps_ua,
                        )
                        .obj(obj_g("discovery.k8s.io", "endpointslices", Some("shop"), Some(&eps_name)))
                        .allow(&ctl_reason("endpointslice-controller"))
                        .took(5.0),
                    ));
                }
            }
        }
        if p.stopped_in_window {
            let del = p.end - 21 * SEC;
            items.push((
                del,
                Rec::new(
                    "delete",
                    format!("/api/v1/namespaces/shop/pods/{}", p.name),
                    &u.rs_ctl,
                    cp,
                    &rs_ua,
                )
                .obj(obj("pods", Some("shop"), Some(&p.name)))
                .allow(&ctl_reason("replicaset-controller"))
                .took(8.0),
            ));
            items.push((
                del + 40 * MS,
                Rec::new(
                    "update",
                    format!("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices/{eps_name}"),
                    &u.eps_ctl,
                    cp,
                    &eps_ua,
                )
                .obj(obj_g(
                    "discovery.k8s.io",
                    "endpointslices",
                    Some("shop"),
                    Some(&eps_name),
                ))
                .allow(&ctl_reason("endpointslice-controller"))
                .took(5.0),
            ));
            items.push((
                p.end + 300 * MS,
                Rec::new(
                    "patch",
                    format!("/api/v1/namespaces/shop/pods/{}/status", p.name),
                    &node.user_json,
                    &node.ip_s,
                    KUBELET_UA,
                )
                .obj(obj("pods", Some("shop"), Some(&p.name)).sub("status"))
                .took(6.0),
            ));
            items.push((
                p.end + 900 * MS,
                Rec::new(
                    "delete",
                    format!("/api/v1/namespaces/shop/pods/{}", p.name),
                    &node.user_json,
                    &node.ip_s,
                    KUBELET_UA,
                )
                .obj(obj("pods", Some("shop"), Some(&p.name)))
                .took(6.0),
            ));
        }
    }
    for k in 0..6 {
        items.push((
            ro.at + 80 * MS + k * 6 * SEC,
            Rec::new(
                "update",
                "/apis/apps/v1/namespaces/shop/deployments/cart/status",
                &u.deploy_ctl,
                cp,
                &dep_ua,
            )
            .obj(obj_g("apps", "deployments", Some("shop"), Some("cart")).sub("status"))
            .allow(&ctl_reason("deployment-controller"))
            .took(7.0),
        ));
    }
    // Token refreshes by kubelets for the service accounts of long-running pods.
    for p in &t.pods {
        let sa = match p.app {
            App::Payments => ("payments", "payments-api"),
            App::CoreDns => ("kube-system", "coredns"),
            App::AwsNode => ("kube-system", "aws-node"),
            App::KubeProxy => ("kube-system", "kube-proxy"),
            _ => continue,
        };
        let node = &t.nodes[p.node];
        items.push((
            at(r, 0.0, 1.0),
            Rec::new(
                "create",
                format!("/api/v1/namespaces/{}/serviceaccounts/{}/token", sa.0, sa.1),
                &node.user_json,
                &node.ip_s,
                KUBELET_UA,
            )
            .obj(obj("serviceaccounts", Some(sa.0), Some(sa.1)).sub("token"))
            .code(201)
            .took(4.0),
        ));
    }
}
