//! The manifests under `deploy/`: every YAML document parses into a typed Kubernetes object (and holds no
//! field the API would not know), the permissions, mounts, resources and probes are what the README
//! promises, and the configuration file in the ConfigMap is accepted by the real `quarry agent`.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Probe, ServiceAccount, Volume,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::serde::Serialize;
use k8s_openapi::Resource;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The objects of `deploy/`, by kind.
#[derive(Default)]
struct Manifests {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    config_maps: Vec<ConfigMap>,
    daemon_sets: Vec<DaemonSet>,
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Parses `doc` as a `T`, and checks that writing it back gives the document again: k8s-openapi skips
/// fields it does not know, so a misspelt field (`readOnlly: true`) would otherwise pass unseen.
fn typed<T: DeserializeOwned + Serialize>(doc: &serde_json::Value, origin: &str) -> T {
    let object: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{origin}: not a valid {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&object).expect("serialize");
    if let Some(path) = difference(doc, &back, String::new()) {
        panic!("{origin}: {path}: a field the Kubernetes API does not know, or a value changed by parsing");
    }
    object
}

/// The path of the first place where `a` and `b` differ.
fn difference(a: &serde_json::Value, b: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .find_map(|(k, v)| match y.get(k) {
                Some(w) => difference(v, w, format!("{path}.{k}")),
                None => Some(format!("{path}.{k}")),
            })
            .or_else(|| {
                y.keys()
                    .find(|k| !x.contains_key(*k))
                    .map(|k| format!("{path}.{k}"))
            }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| difference(v, w, format!("{path}[{i}]"))),
        _ => (a != b).then_some(path),
    }
}

/// Every YAML document of every `.yaml`/`.yml` file of `deploy/` (what `kubectl apply -f deploy/` reads).
fn load() -> Manifests {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .expect("deploy/ exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/");
    let mut m = Manifests::default();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read manifest");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        for (i, doc) in docs.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let origin = format!("{} document {}", file.display(), i + 1);
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            let kind = doc["kind"].as_str().unwrap_or_default();
            let is = |api_version: &str, k: &str| api == api_version && kind == k;
            if is(Namespace::API_VERSION, Namespace::KIND) {
                m.namespaces.push(typed(&doc, &origin));
            } else if is(ServiceAccount::API_VERSION, ServiceAccount::KIND) {
                m.service_accounts.push(typed(&doc, &origin));
            } else if is(ClusterRole::API_VERSION, ClusterRole::KIND) {
                m.cluster_roles.push(typed(&doc, &origin));
            } else if is(ClusterRoleBinding::API_VERSION, ClusterRoleBinding::KIND) {
                m.bindings.push(typed(&doc, &origin));
            } else if is(ConfigMap::API_VERSION, ConfigMap::KIND) {
                m.config_maps.push(typed(&doc, &origin));
            } else if is(DaemonSet::API_VERSION, DaemonSet::KIND) {
                m.daemon_sets.push(typed(&doc, &origin));
            } else {
                panic!("{origin}: unexpected kind {api:?} {kind:?}");
            }
        }
    }
    m
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().expect("every object has a name")
}

/// The agent's DaemonSet, its pod spec and its one container.
fn agent(m: &Manifests) -> (&DaemonSet, &PodSpec, &Container) {
    assert_eq!(m.daemon_sets.len(), 1, "one DaemonSet");
    let ds = &m.daemon_sets[0];
    let spec = ds.spec.as_ref().expect("DaemonSet spec");
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.containers.len(), 1, "one container");
    assert!(pod.init_containers.is_none(), "no init containers");
    (ds, pod, &pod.containers[0])
}

/// The ConfigMap mounted into the agent, the path the agent is given with `--config`, and that file's
/// text.
fn agent_config(m: &Manifests) -> (PathBuf, String) {
    let (_, pod, c) = agent(m);
    let argv: Vec<&str> = c
        .command
        .iter()
        .chain(c.args.iter())
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &argv[..2],
        ["quarry", "agent"],
        "runs `quarry agent`: {argv:?}"
    );
    let at = argv
        .iter()
        .position(|a| *a == "--config")
        .expect("the agent is given --config");
    let config_path = PathBuf::from(argv[at + 1]);
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|vm| Some(Path::new(&vm.mount_path)) == config_path.parent())
        .expect("the --config file's directory is a mount");
    let volume = volume(pod, &mount.name);
    let cm_name = &volume
        .config_map
        .as_ref()
        .expect("the configuration comes from a ConfigMap")
        .name;
    let ds_ns = agent(m).0.metadata.namespace.as_deref();
    let cm = m
        .config_maps
        .iter()
        .find(|cm| name_of(&cm.metadata) == cm_name && cm.metadata.namespace.as_deref() == ds_ns)
        .unwrap_or_else(|| panic!("ConfigMap {cm_name} in the DaemonSet's namespace"));
    let key = config_path
        .file_name()
        .and_then(|f| f.to_str())
        .expect("file name");
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("ConfigMap {cm_name} has no key {key}"));
    (config_path, text.clone())
}

fn volume<'a>(pod: &'a PodSpec, name: &str) -> &'a Volume {
    pod.volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// A top-level string setting of quarry.toml.
fn setting(toml_text: &str, key: &str) -> Option<String> {
    let table: toml::Table = toml_text.parse().expect("quarry.toml is TOML");
    table.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

#[test]
fn every_document_is_a_known_kubernetes_object() {
    let m = load();
    assert_eq!(m.namespaces.len(), 1);
    assert_eq!(m.service_accounts.len(), 1);
    assert_eq!(m.cluster_roles.len(), 1);
    assert_eq!(m.bindings.len(), 1);
    assert_eq!(m.config_maps.len(), 1);
    assert_eq!(m.daemon_sets.len(), 1);
    // every namespaced object lives in the one namespace the manifests create
    let ns = name_of(&m.namespaces[0].metadata);
    assert_eq!(ns, "quarry-system");
    for meta in m
        .service_accounts
        .iter()
        .map(|o| &o.metadata)
        .chain(m.config_maps.iter().map(|o| &o.metadata))
        .chain(m.daemon_sets.iter().map(|o| &o.metadata))
    {
        assert_eq!(meta.namespace.as_deref(), Some(ns), "{}", name_of(meta));
    }
    // `kubectl apply -f deploy/` goes through the files in name order: the namespace comes first
    let mut files: Vec<_> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
        .collect();
    files.sort();
    let first = std::fs::read_to_string(deploy_dir().join(&files[0])).unwrap();
    let first: Vec<serde_json::Value> = serde_saphyr::from_multiple(&first).unwrap();
    assert_eq!(
        first.iter().find(|d| !d.is_null()).map(|d| &d["kind"]),
        Some(&serde_json::json!("Namespace")),
        "{} must hold the Namespace, as it is applied first",
        files[0]
    );
}

#[test]
fn rbac_is_read_only_on_pods_namespaces_and_nodes() {
    let m = load();
    let role = &m.cluster_roles[0];
    assert!(role.aggregation_rule.is_none(), "no aggregated rules");
    let mut granted = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        assert!(rule.non_resource_urls.is_none(), "no non-resource URLs");
        assert!(rule.resource_names.is_none(), "no per-name rules");
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    granted.insert((group.as_str(), resource.as_str(), verb.as_str()));
                }
            }
        }
    }
    let mut wanted = BTreeSet::new();
    for resource in ["pods", "namespaces", "nodes"] {
        for verb in ["get", "list", "watch"] {
            wanted.insert(("", resource, verb));
        }
    }
    assert_eq!(
        granted, wanted,
        "exactly get/list/watch on core pods, namespaces, nodes"
    );

    let (ds, pod, _) = agent(&m);
    let ds_ns = ds.metadata.namespace.as_deref().expect("namespace");
    let sa_name = pod
        .service_account_name
        .as_deref()
        .expect("the DaemonSet names its service account");
    assert!(
        m.service_accounts
            .iter()
            .any(|sa| name_of(&sa.metadata) == sa_name
                && sa.metadata.namespace.as_deref() == Some(ds_ns)),
        "ServiceAccount {sa_name} exists in {ds_ns}"
    );
    let binding = &m.bindings[0];
    assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, name_of(&role.metadata));
    let subjects = binding.subjects.as_deref().unwrap_or_default();
    assert_eq!(subjects.len(), 1, "bound to the agent only");
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, sa_name);
    assert_eq!(subjects[0].namespace.as_deref(), Some(ds_ns));
}

#[test]
fn host_paths_are_read_only_but_the_state_directory() {
    let m = load();
    let (_, pod, c) = agent(&m);
    let (_, toml_text) = agent_config(&m);
    let state_dir = setting(&toml_text, "state_dir").expect("quarry.toml sets state_dir");

    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let mut writable = Vec::new();
    for vm in mounts {
        let v = volume(pod, &vm.name);
        assert!(
            vm.mount_propagation.is_none() || vm.mount_propagation.as_deref() == Some("None"),
            "{}: no mount propagation",
            vm.name
        );
        if v.host_path.is_none() {
            continue;
        }
        if vm.read_only != Some(true) {
            writable.push(vm);
        }
    }
    assert_eq!(
        writable.len(),
        1,
        "one writable host path, the state directory: {:?}",
        writable.iter().map(|vm| &vm.mount_path).collect::<Vec<_>>()
    );
    let state = writable[0];
    assert_eq!(
        state.mount_path, state_dir,
        "the state directory's mount is state_dir"
    );
    assert!(state.sub_path.is_none());
    let host = volume(pod, &state.name).host_path.as_ref().unwrap();
    assert_eq!(host.type_.as_deref(), Some("DirectoryOrCreate"));

    // every host path volume is mounted (none left over), and the log directories are there
    for v in pod.volumes.iter().flatten() {
        assert!(
            mounts.iter().any(|vm| vm.name == v.name),
            "volume {} is mounted",
            v.name
        );
    }
    let read_only: BTreeSet<&str> = mounts
        .iter()
        .filter(|vm| vm.read_only == Some(true))
        .filter(|vm| volume(pod, &vm.name).host_path.is_some())
        .map(|vm| vm.mount_path.as_str())
        .collect();
    for path in [
        "/var/log",
        "/var/log/pods",
        "/var/log/containers",
        "/run/log/journal",
        "/etc/machine-id",
    ] {
        assert!(read_only.contains(path), "{path} is mounted read-only");
    }
    // the node's logs are mounted where they are on the node: /var/log/containers links are absolute
    for vm in mounts {
        if let Some(h) = &volume(pod, &vm.name).host_path {
            assert_eq!(h.path, vm.mount_path, "{} at its node path", vm.name);
        }
    }
}

/// Quantity in base units (cores, bytes) for the suffixes the manifests use.
fn quantity(q: &str) -> f64 {
    let (num, mult) = if let Some(n) = q.strip_suffix("Mi") {
        (n, 1024.0 * 1024.0)
    } else if let Some(n) = q.strip_suffix("Gi") {
        (n, 1024.0 * 1024.0 * 1024.0)
    } else if let Some(n) = q.strip_suffix("Ki") {
        (n, 1024.0)
    } else if let Some(n) = q.strip_suffix('m') {
        (n, 0.001)
    } else {
        (q, 1.0)
    };
    num.parse::<f64>()
        .unwrap_or_else(|_| panic!("quantity {q:?}"))
        * mult
}

#[test]
fn resources_environment_probes_and_security() {
    let m = load();
    let (ds, pod, c) = agent(&m);
    let (_, toml_text) = agent_config(&m);

    let res = c.resources.as_ref().expect("resources");
    let requests = res.requests.as_ref().expect("requests");
    let limits = res.limits.as_ref().expect("limits");
    for r in ["cpu", "memory"] {
        let req = quantity(&requests.get(r).unwrap_or_else(|| panic!("{r} request")).0);
        let lim = quantity(&limits.get(r).unwrap_or_else(|| panic!("{r} limit")).0);
        assert!(
            req > 0.0 && req <= lim,
            "{r}: request {req} within limit {lim}"
        );
    }

    let env = c.env.as_deref().unwrap_or_default();
    let node = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    assert!(node.value.is_none());
    let field = node
        .value_from
        .as_ref()
        .and_then(|f| f.field_ref.as_ref())
        .expect("NODE_NAME from a fieldRef");
    assert_eq!(field.field_path, "spec.nodeName");

    // the probes reach the metrics endpoint the configuration opens, on the pod's address
    let listen = setting(&toml_text, "metrics_listen").unwrap_or_else(|| "0.0.0.0:7701".into());
    let listen: SocketAddr = listen.parse().expect("metrics_listen is an address");
    assert!(
        listen.ip().is_unspecified(),
        "the kubelet probes the pod IP: {listen}"
    );
    let port_of = |p: &IntOrString| match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
    };
    let probes: [(&str, Option<&Probe>); 3] = [
        ("liveness", c.liveness_probe.as_ref()),
        ("readiness", c.readiness_probe.as_ref()),
        ("startup", c.startup_probe.as_ref()),
    ];
    for (what, probe) in probes {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{what} probe is an HTTP GET"));
        assert_eq!(get.path.as_deref(), Some("/healthz"), "{what}");
        assert_eq!(
            port_of(&get.port),
            i32::from(listen.port()),
            "{what} probe port"
        );
    }
    let metrics_port = port_of(&IntOrString::String("metrics".into()));
    assert_eq!(metrics_port, i32::from(listen.port()));
    let annotations = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .expect("pod annotations");
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], listen.port().to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    // scheduling and rollout
    let spec = ds.spec.as_ref().unwrap();
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    for (k, v) in spec.selector.match_labels.iter().flatten() {
        assert_eq!(
            labels.and_then(|l| l.get(k)),
            Some(v),
            "selector {k} matches the pods"
        );
    }
    let update = spec.update_strategy.as_ref().expect("update strategy");
    assert_eq!(update.type_.as_deref(), Some("RollingUpdate"));
    assert!(update
        .rolling_update
        .as_ref()
        .and_then(|r| r.max_unavailable.as_ref())
        .is_some());
    assert!(
        pod.tolerations
            .iter()
            .flatten()
            .any(|t| t.operator.as_deref() == Some("Exists")
                && t.key.is_none()
                && t.effect.is_none()),
        "tolerates every taint"
    );
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert!(pod.termination_grace_period_seconds.unwrap_or(30) >= 30);
    assert_ne!(pod.host_network, Some(true));
    assert_ne!(pod.host_pid, Some(true));
    assert_ne!(pod.host_ipc, Some(true));

    // the container's privileges
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    for cap in caps.add.iter().flatten() {
        assert_eq!(cap, "DAC_READ_SEARCH", "no capability but reading");
    }
    let seccomp = sc
        .seccomp_profile
        .as_ref()
        .or(pod
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref()))
        .expect("seccomp profile");
    assert_eq!(seccomp.type_, "RuntimeDefault");
}

/// Runs `quarry agent --check-config` with the file, in the environment the DaemonSet gives it.
fn check_config(toml_text: &str, extra_env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quarry.toml");
    std::fs::write(&path, toml_text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.arg("agent")
        .arg("--config")
        .arg(&path)
        .arg("--check-config");
    for (k, _) in std::env::vars() {
        if k.starts_with("QUARRY_") || k == "NODE_NAME" {
            cmd.env_remove(k);
        }
    }
    cmd.env("NODE_NAME", "node-a");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("run quarry")
}

#[test]
fn the_config_map_is_accepted_by_quarry_agent() {
    let m = load();
    let (_, toml_text) = agent_config(&m);
    let out = check_config(&toml_text, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rejected:\n{stdout}\n{stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(stdout.contains("node-a"), "NODE_NAME is the node: {stdout}");
    let server = setting(&toml_text, "server").expect("quarry.toml sets server");
    assert!(stdout.contains(&server), "{stdout}");
    let server_port = server
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok());
    assert_eq!(server_port, Some(7700), "the server's default port");

    // checking touches nothing: the state directory is not created
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = check_config(&toml_text, &[("QUARRY_STATE_DIR", state.to_str().unwrap())]);
    assert!(out.status.success());
    assert!(
        !state.exists(),
        "--check-config created the state directory"
    );
}

#[test]
fn a_broken_config_map_is_refused_with_the_key_named() {
    let m = load();
    let (_, toml_text) = agent_config(&m);
    let mut table: toml::Table = toml_text.parse().unwrap();

    // an unknown top-level setting
    let mut top = table.clone();
    top.insert("sever".into(), "http://x:7700".into());
    let out = check_config(&toml::to_string(&top).unwrap(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted an unknown setting");
    assert!(stderr.contains("\"sever\""), "names the key: {stderr}");

    // an unknown key in the [agent] table
    table
        .get_mut("agent")
        .and_then(|a| a.as_table_mut())
        .expect("quarry.toml has an [agent] table")
        .insert("batch_byte".into(), 1.into());
    let out = check_config(&toml::to_string(&table).unwrap(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted an unknown [agent] key");
    assert!(stderr.contains("batch_byte"), "names the key: {stderr}");

    // a value only the agent's validation refuses (a custom redaction pattern that matches nothing but
    // the empty string): --check-config runs it, not only the parsing
    let mut bad = toml_text.parse::<toml::Table>().unwrap();
    let redact = bad["agent"]["redact"].clone();
    let mut redact = redact.as_table().cloned().unwrap_or_default();
    let mut rule = toml::Table::new();
    rule.insert("name".into(), "everything".into());
    rule.insert("pattern".into(), "x*".into());
    redact.insert("custom".into(), toml::Value::Array(vec![rule.into()]));
    bad["agent"]
        .as_table_mut()
        .unwrap()
        .insert("redact".into(), redact.into());
    let out = check_config(&toml::to_string(&bad).unwrap(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted an empty-matching pattern");
    assert!(stderr.contains("everything"), "names the rule: {stderr}");
}
