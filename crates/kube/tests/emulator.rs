//! The metadata cache against a Kubernetes API emulator.
//!
//! No real apiserver can run on the test machines, so `tests/apiserver.py` serves kmock 0.8's in-memory
//! Kubernetes emulator on loopback (`pip install kmock==0.8.*`, which `.ci/run` does), with fixes for what
//! kube-rs watchers need (resourceVersions, field selectors, the namespaces path; see the script). It is
//! loaded with the recorded real Pod and Namespace objects of fluent-bit's Kubernetes tests (Apache-2.0,
//! used in place from `shared/data`), plus namespaces, two nodes and one pod on the other node.
//! Live changes go through kube-rs `Api` calls, as any client's would.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Config};
use quarry_kube::{MetaConfig, Metadata, PodMeta};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODE: &str = "ip-10-49-18-80.eu-west-1.compute.internal";
const OTHER_NODE: &str = "ip-10-49-20-7.eu-west-1.compute.internal";
const META: &str =
    "../../../shared/data/container_logs/fluent-bit/tests/runtime/data/kubernetes/meta";

/// The emulator process; killed on drop (and it exits by itself when its stdin closes).
struct Apiserver {
    child: Child,
    _stdin: ChildStdin,
    manifest: Value,
}

impl Apiserver {
    fn start() -> Apiserver {
        // cargo runs tests from the package directory; a path baked in at build time would point into
        // whichever checkout built the binary first when target directories are shared
        let dir = Path::new(".");
        let mut child = Command::new("python3")
            .arg(dir.join("tests/apiserver.py"))
            .arg("--meta-dir")
            .arg(dir.join(META))
            .args(["--node", NODE, "--other-node", OTHER_NODE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            !line.is_empty(),
            "the emulator did not start (is kmock installed? pip install 'kmock==0.8.*'); see its stderr above"
        );
        Apiserver {
            child,
            _stdin: stdin,
            manifest: serde_json::from_str(&line).unwrap(),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.manifest["port"])
    }

    fn pods(&self) -> &Vec<Value> {
        self.manifest["pods"].as_array().unwrap()
    }
}

impl Drop for Apiserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Polls `f` until it gives a value, for at most `secs` seconds.
fn eventually<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn initial_lists_fill_the_cache_with_this_nodes_pods() {
    let server = Apiserver::start();
    let rt = runtime();
    let mut cfg = MetaConfig::new(NODE);
    cfg.api_url = Some(server.url());
    cfg.annotation_allow = vec!["prometheus.io/*".into(), "kubernetes.io/created-by".into()];
    let started = Instant::now();
    let meta = Metadata::start(cfg, rt.handle());
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "start does not block"
    );
    assert!(meta.wait_ready(Duration::from_secs(20)));
    assert!(meta.generation() > 0);

    // Spot checks against the recordings themselves.
    let base = meta.pod("core", "base").expect("core/base");
    assert_eq!(base.uid, "e9f2963f-55f2-11e9-84c5-02e422b8a84a");
    assert_eq!(
        base.labels,
        map(&[("app.kubernetes.io/name", "fluent-bit")])
    );
    assert_eq!(
        base.annotations,
        map(&[
            ("prometheus.io/path", "/api/v1/metrics/prometheus"),
            ("prometheus.io/port", "2020"),
            ("prometheus.io/scrape", "true"),
        ])
    );
    assert_eq!(base.images, map(&[("fluent-bit", "fluent/fluent-bit")]));
    assert_eq!(
        base.namespace_labels,
        map(&[
            ("fake-namespace-label1", "label1"),
            ("fake-namespace-label2", "label2")
        ])
    );
    assert_eq!(
        base.node_labels["topology.kubernetes.io/zone"],
        "eu-west-1a"
    );
    assert!(!base.deleted);
    let kairos = meta
        .pod_by_uid("d6c53deb-05a4-11e8-a8c4-080027435fb7")
        .expect("kairosdb by uid");
    assert_eq!(
        (kairos.namespace.as_str(), kairos.name.as_str()),
        ("default", "kairosdb-914055854-b63vq")
    );
    assert_eq!(
        kairos.labels,
        map(&[("name", "kairosdb"), ("pod-template-hash", "914055854")])
    );
    assert_eq!(
        kairos.images,
        map(&[("kairosdb", "docker.io/davradocker/docker-kairosdb:1.1.1_9")])
    );
    assert!(kairos.annotations["kubernetes.io/created-by"].contains("ReplicaSet"));
    assert!(!kairos
        .annotations
        .contains_key("fluentbit.io/exclude-kairosdb"));

    // Every pod of this node, by name and by uid, as the emulator serves it.
    let mut here = 0;
    for p in server.pods() {
        let (ns, name, uid) = (
            p["namespace"].as_str().unwrap(),
            p["name"].as_str().unwrap(),
            p["uid"].as_str().unwrap(),
        );
        if p["node"] != NODE {
            assert_eq!(meta.pod(ns, name), None, "{ns}/{name} runs on another node");
            assert_eq!(
                meta.pod_by_uid(uid),
                None,
                "{ns}/{name} runs on another node"
            );
            continue;
        }
        here += 1;
        let got = meta.pod(ns, name).unwrap_or_else(|| panic!("{ns}/{name}"));
        assert!(Arc::ptr_eq(&got, &meta.pod_by_uid(uid).unwrap()));
        let annotations: BTreeMap<String, String> = strings(&p["annotations"])
            .into_iter()
            .filter(|(k, _)| k.starts_with("prometheus.io/") || k == "kubernetes.io/created-by")
            .collect();
        let want = PodMeta {
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
            labels: strings(&p["labels"]),
            annotations,
            images: strings(&p["images"]),
            namespace_labels: strings(&server.manifest["namespaces"][ns]),
            node_labels: strings(&server.manifest["node_labels"]),
            multiline: BTreeMap::new(),
            deleted: false,
        };
        assert_eq!(*got, want);
    }
    assert_eq!(here, 5);
    let stats = meta.stats();
    assert!(stats.connected);
    assert_eq!(
        (stats.pods, stats.namespaces, stats.deleted_kept),
        (5, 3, 0)
    );
    assert_eq!(stats.watch_errors, 0, "{stats:?}");
    assert!(stats.events >= 9, "5 pods, 3 namespaces, 1 node: {stats:?}");
}

fn live_pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "core",
            "labels": {"app": "shop", "tier": "web", "secret-label": "hidden"},
            "annotations": {
                "quarry.dev/multiline": "java",
                "quarry.dev/multiline.sidecar": "go",
                "team.example/owner": "payments",
                "not-allowed": "x"
            }
        },
        "spec": {
            "nodeName": node,
            "initContainers": [{"name": "migrate", "image": "shop/migrate:3"}],
            "containers": [
                {"name": "app", "image": "shop/app:3"},
                {"name": "sidecar", "image": "envoyproxy/envoy:v1.31"}
            ]
        }
    }))
    .unwrap()
}

#[test]
fn follows_live_changes_and_keeps_deleted_pods_for_the_grace_period() {
    let server = Apiserver::start();
    let rt = runtime();
    let grace = Duration::from_secs(2);
    let mut cfg = MetaConfig::new(NODE);
    cfg.api_url = Some(server.url());
    cfg.grace = grace;
    cfg.label_allow = vec![
        "app".into(),
        "tier".into(),
        "fake-namespace-label1".into(),
        "topology.kubernetes.io/*".into(),
    ];
    cfg.annotation_allow = vec!["team.example/*".into()];
    let meta = Metadata::start(cfg, rt.handle());
    assert!(meta.wait_ready(Duration::from_secs(20)));
    let base_uid = "e9f2963f-55f2-11e9-84c5-02e422b8a84a";
    assert_eq!(
        meta.pod_by_uid(base_uid).unwrap().namespace_labels,
        map(&[("fake-namespace-label1", "label1")])
    );

    let client = rt
        .block_on(async { Client::try_from(Config::new(server.url().parse().unwrap())).unwrap() });
    let pods: Api<Pod> = Api::namespaced(client.clone(), "core");

    // Created: the pod of the other node first, so once ours shows the other one has been seen too.
    let gen = meta.generation();
    rt.block_on(async {
        pods.create(&PostParams::default(), &live_pod("remote-1", OTHER_NODE))
            .await?;
        pods.create(&PostParams::default(), &live_pod("shop-1", NODE))
            .await
    })
    .unwrap();
    let shop = eventually("the created pod", 10, || meta.pod("core", "shop-1"));
    assert!(meta.generation() > gen);
    assert!(meta.pod("core", "remote-1").is_none());
    assert_eq!(shop.labels, map(&[("app", "shop"), ("tier", "web")]));
    assert_eq!(shop.annotations, map(&[("team.example/owner", "payments")]));
    assert_eq!(shop.multiline, map(&[("*", "java"), ("sidecar", "go")]));
    assert_eq!(shop.multiline_for("app"), Some("java"));
    assert_eq!(
        shop.images,
        map(&[
            ("app", "shop/app:3"),
            ("migrate", "shop/migrate:3"),
            ("sidecar", "envoyproxy/envoy:v1.31")
        ])
    );
    assert_eq!(
        shop.namespace_labels,
        map(&[("fake-namespace-label1", "label1")])
    );
    assert_eq!(
        shop.node_labels,
        map(&[("topology.kubernetes.io/zone", "eu-west-1a")])
    );
    assert!(!shop.uid.is_empty());
    assert_eq!(meta.pod_by_uid(&shop.uid).unwrap().name, "shop-1");

    // A label changes.
    rt.block_on(pods.patch(
        "shop-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}})),
    ))
    .unwrap();
    eventually("the new label", 10, || {
        (meta.pod("core", "shop-1")?.labels.get("tier")? == "db").then_some(())
    });

    // The namespace's and the node's labels change: every snapshot follows.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    rt.block_on(async {
        namespaces
            .patch(
                "core",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"labels": {"fake-namespace-label1": "relabelled"}}}),
                ),
            )
            .await?;
        nodes
            .patch(
                NODE,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "eu-west-1c"}}}),
                ),
            )
            .await
    })
    .unwrap();
    eventually("the namespace and node labels", 10, || {
        let m = meta.pod_by_uid(base_uid)?;
        (m.namespace_labels["fake-namespace-label1"] == "relabelled"
            && m.node_labels["topology.kubernetes.io/zone"] == "eu-west-1c")
            .then_some(())
    });
    let shop = meta.pod("core", "shop-1").unwrap();
    assert_eq!(shop.namespace_labels["fake-namespace-label1"], "relabelled");
    assert_eq!(
        shop.node_labels["topology.kubernetes.io/zone"],
        "eu-west-1c"
    );

    // Deleted: still resolvable, marked deleted, for the grace period; then gone.
    rt.block_on(pods.delete("shop-1", &DeleteParams::default()))
        .unwrap();
    let gone = eventually("the deletion", 10, || {
        meta.pod("core", "shop-1").filter(|m| m.deleted)
    });
    let seen_deleted = Instant::now();
    assert_eq!(gone.labels, map(&[("app", "shop"), ("tier", "db")]));
    assert!(meta.pod_by_uid(&shop.uid).unwrap().deleted);
    let stats = meta.stats();
    assert_eq!((stats.pods, stats.deleted_kept), (5, 1), "{stats:?}");
    std::thread::sleep(grace / 2);
    assert!(
        meta.pod("core", "shop-1").is_some(),
        "kept during the grace period"
    );
    eventually("the eviction", 10, || {
        meta.pod("core", "shop-1").is_none().then_some(())
    });
    let kept = seen_deleted.elapsed();
    assert!(
        kept >= grace - Duration::from_millis(300),
        "evicted after {kept:?}"
    );
    assert!(meta.pod_by_uid(&shop.uid).is_none());
    assert_eq!(meta.stats().deleted_kept, 0);
    assert!(meta.stats().connected);
}
