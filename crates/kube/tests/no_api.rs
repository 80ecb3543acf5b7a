//! Without API access the cache stays empty, never blocks or panics, and says so in ONE warning.
//!
//! Its own test binary, because it installs a process-wide tracing subscriber to count the warnings of
//! the watch tasks, which run on runtime threads. The API is a closed loopback port (connection
//! refused), then a missing configuration (no in-cluster service account, no kubeconfig).

use quarry_kube::{MetaConfig, Metadata};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Records (level, message) of this crate's log events.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Level, String)>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target().starts_with("quarry_kube") {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), message.0));
        }
    }
}

impl Capture {
    fn at(&self, level: Level) -> Vec<String> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn without_api_lookups_are_none_and_one_warning_is_logged() {
    // Set before any thread starts. Inside a pod the in-cluster configuration would be found instead.
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    std::env::set_var("KUBECONFIG", "/nonexistent/quarry-kube-test/kubeconfig");
    let capture = Capture::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Connection refused.
    let mut cfg = MetaConfig::new("node-1");
    cfg.api_url = Some(format!("http://127.0.0.1:{}", closed_port()));
    let started = Instant::now();
    let meta = Metadata::start(cfg, rt.handle());
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "start does not block"
    );
    assert!(!meta.wait_ready(Duration::from_millis(500)));
    // The three watches retry with backoff (0.8 s, then 1.6 s, ...): wait for the second round.
    let deadline = Instant::now() + Duration::from_secs(15);
    while meta.stats().watch_errors < 6 {
        assert!(Instant::now() < deadline, "no retries: {:?}", meta.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(meta.pod("default", "any"), None);
    assert_eq!(
        meta.pod_by_uid("d6c53deb-05a4-11e8-a8c4-080027435fb7"),
        None
    );
    let stats = meta.stats();
    assert!(!stats.connected);
    assert_eq!(
        (
            stats.pods,
            stats.namespaces,
            stats.deleted_kept,
            stats.events
        ),
        (0, 0, 0, 0)
    );
    let warnings = capture.at(Level::WARN);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("log paths only"), "{warnings:?}");
    assert!(capture.at(Level::INFO).is_empty(), "never connected");

    // An address that is not a URL: one more warning, and nothing to wait for.
    let mut cfg = MetaConfig::new("node-1");
    cfg.api_url = Some("http://[not a url".into());
    let bad = Metadata::start(cfg, rt.handle());
    let started = Instant::now();
    assert!(!bad.wait_ready(Duration::from_secs(10)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no wait without a configuration"
    );
    assert_eq!(bad.pod("default", "any"), None);
    assert_eq!(capture.at(Level::WARN).len(), 2);

    // No configuration at all (not inside a pod, KUBECONFIG names a missing file): same, retrying.
    if !in_pod {
        let none = Metadata::start(MetaConfig::new("node-1"), rt.handle());
        let started = Instant::now();
        assert!(!none.wait_ready(Duration::from_secs(10)));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no wait without a configuration"
        );
        assert!(!none.stats().connected);
        let warnings = capture.at(Level::WARN);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[2].contains("log paths only"), "{warnings:?}");
    }
    assert!(capture.at(Level::INFO).is_empty());
}
