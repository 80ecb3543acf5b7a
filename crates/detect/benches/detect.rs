//! Detection speed (issue 4): matching throughput per core, detection's share of ingest CPU, and the
//! latency from ingest to a delivered alert.
//!
//! Run: `cargo bench -p quarry-detect --bench detect` (release; under a minute on two cores).
//! `QUARRY_BENCH_SCALE` (default 1) sets the demo generator's scale, `QUARRY_BENCH_PARTS` the parts to run
//! (default `1,2,3`), `QUARRY_DATA` the shared data folder (default `../../../shared/data` from this crate).
//! Temporary stores and alert journals go to the system's temporary folder (`TMPDIR`).
//!
//! 1. Matching, one thread: events are parsed first (not timed), then [`Detector::detect`] runs over them,
//!    pass after pass until at least two seconds of work. Events/s are given per thread CPU second (what a
//!    core does, robust to other processes sharing the machine) and per wall second.
//!    - the demo generator's kube-apiserver audit log (`quarry_demo::generate`, fixed end time), chunks of
//!      format `audit` decoded by the audit parser;
//!    - the PerfSPEC Kubernetes event dataset (`k8s_audit/perfspec_kubernetes_event_dataset/audit-logs.csv`):
//!      16,563 real audit events of a kubeadm cluster installing and removing Helm charts, which Logstash
//!      flattened to CSV (`logstash.conf` there). Each row is turned back into the audit event it came
//!      from and parsed by the audit parser, so rules see real field shapes. The columns are, in order:
//!      `host` (Logstash's, dropped), `requestReceivedTimestamp`, `user.username`, `verb`,
//!      `objectRef.resource`, `objectRef.subresource`, `objectRef.name`, `responseObject.metadata.name`,
//!      `requestURI`, `auditID`, `stage`, `responseStatus.code` and three `responseObject` uids (empty
//!      throughout: the cluster's policy logged at level `Metadata`, which records no bodies). The event is
//!      `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata", auditID, stage, requestURI,
//!      verb, user:{username}, objectRef:{resource, subresource, name, namespace, apiGroup, apiVersion},
//!      responseStatus:{metadata:{}, code}, requestReceivedTimestamp}`, empty columns left out. `objectRef`
//!      is present only for resource requests (a non-empty resource); its `namespace`, `apiGroup` and
//!      `apiVersion` are not columns and are read back from `requestURI` (`/api/v1/namespaces/NS/...`,
//!      `/apis/GROUP/VERSION/...`). `sourceIPs`, `userAgent`, `annotations` and `stageTimestamp` were
//!      removed by Logstash and cannot be restored. The file's last row is cut short (10 of 15 columns);
//!      rows without 15 columns are left out and counted.
//!    - the same two streams through every SigmaHQ rule given (`rules/sigma`, loaded with
//!      [`RuleSet::add_path`]; what does not load is counted and summarised);
//!    - the built-in pack on the demo hour's other kinds (container, syslog, VPC flow logs);
//!    - the full live path, [`Live::process`] with the built-in pack and an alert journal in a temporary
//!      folder, over the demo audit events in batches of 1000: matching, alert deduplication and the
//!      journal's fsync, correlations and behaviour baselines, i.e. what the server pays per batch. Each
//!      pass starts from a fresh `Live` so that every pass raises the alerts anew;
//!    - where the pack's time goes on audit events: reading an event's flattened fields into the rules'
//!      field slots ([`SigmaEvent::new`]) against the whole of `detect`.
//! 2. Detection's share of ingest CPU: the demo's whole hour (container, syslog, audit and VPC flow logs),
//!    parsed first (parse CPU reported apart), stored in a fresh [`Store`] (WAL fsync on, as served)
//!    without an observer and with `Live` (built-in pack) as observer, commit included; process CPU
//!    (user + system, all threads, `getrusage(RUSAGE_SELF)`) and wall time of each, two rounds each,
//!    alternating. In two orders: file after file in chunks of up to 2 MiB (as an import loads), and
//!    "live": every file cut into 10-second slices of event time, all slices in time order (as agents
//!    stream). The order matters to correlations: file after file, most matches of a file loaded after
//!    others are older than what the correlation stage has already released and are left out of it
//!    (counted as late). Then, by kind, matching alone against `Live::process`.
//! 3. Ingest to alert delivered: a store with `Live` as observer delivering to a webhook served by this
//!    program (a thread per connection that reads each request whole by its Content-Length and answers
//!    `200 OK`, noting the arrival time, the alert's rule and the user of its evidence). 20 warm-up and
//!    300 measured batches, paced at 20 a second: 1000 demo audit events plus one event, by a user of its
//!    own (so deduplication never merges two), that opens a high-level alert: a ClusterRoleBinding to
//!    cluster-admin, or, when a dry run shows that this opens no high alert of its own (its rule only
//!    feeds a correlation), an exec into a kube-system pod. Latency is the arrival of that alert at the
//!    receiver minus the instant before `Store::ingest`.
//!
//! The allocator is mimalloc, as in the `quarry` binary.

use quarry_detect::deliver::Sink;
use quarry_detect::{
    Detector, Level, Live, LiveOptions, Match, ProblemKind, RuleSet, Scratch, SigmaEvent,
};
use quarry_model::{Event, Kind, Source};
use quarry_parse::{Decoder, DecoderOptions, Format};
use quarry_store::wal::BatchKey;
use quarry_store::{Observer, Store, StoreConfig};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error>;

/// End of the generated demo hour: 2024-05-01T12:00:00Z.
const END_NS: i64 = 1_714_564_800_000_000_000;
/// Least work per throughput figure.
const MIN_WORK: Duration = Duration::from_secs(2);
/// Batch size of the live path and of the latency test's background.
const BATCH: usize = 1000;
/// Columns of a PerfSPEC CSV row.
const PERFSPEC_COLUMNS: usize = 15;
/// Latency test: warm-up and measured batches, and their pace.
const WARMUP: usize = 20;
const MEASURED: usize = 300;
const PACE: Duration = Duration::from_millis(50);
/// Part 2's live order: slices of event time per file.
const WINDOW_NS: i64 = 10 * 1_000_000_000;

/// Events of one source, parsed.
type Batches = Vec<(Source, Vec<Event>)>;

fn main() -> Result<(), Error> {
    let scale: u32 = match std::env::var("QUARRY_BENCH_SCALE") {
        Ok(s) => s
            .parse()
            .map_err(|_| format!("QUARRY_BENCH_SCALE={s:?}: expected a whole number"))?,
        Err(_) => 1,
    };
    let parts: Vec<u32> = match std::env::var("QUARRY_BENCH_PARTS") {
        Ok(s) => s
            .split(',')
            .map(|p| match p.trim().parse() {
                Ok(n @ 1..=3) => Ok(n),
                _ => Err(format!(
                    "QUARRY_BENCH_PARTS={s:?}: expected parts 1, 2, 3 (e.g. 1,3)"
                )),
            })
            .collect::<Result<_, _>>()?,
        Err(_) => vec![1, 2, 3],
    };
    let data = std::env::var_os("QUARRY_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let started = Instant::now();
    machine(scale);

    // Inputs, parsed once.
    let demo_cfg = quarry_demo::DemoConfig {
        scale,
        end_ns: END_NS,
        ..quarry_demo::DemoConfig::default()
    };
    let demo_audit = demo_audit(&demo_cfg);
    println!("input: demo audit log, {} events", count(&demo_audit));
    let builtin = RuleSet::builtin();
    let t = Instant::now();
    let pack = Detector::new(&builtin);
    println!(
        "built-in pack: {} rules, {} correlations, {} problems, compiled in {:.0} ms",
        pack.rules().len(),
        builtin.correlations.len(),
        pack.problems().len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    for p in pack.problems() {
        println!("  problem: {p}");
    }
    let hour = (parts.contains(&1) || parts.contains(&2)).then(|| demo_hour(&demo_cfg));

    if parts.contains(&1) {
        let perfspec =
            perfspec(&data.join("k8s_audit/perfspec_kubernetes_event_dataset/audit-logs.csv"))?;
        println!(
            "input: PerfSPEC audit set, {} events ({} CSV row(s) left out{})",
            count(&perfspec.batches),
            perfspec.dropped,
            if perfspec.dropped == 0 {
                ""
            } else {
                ": not 15 columns; the file's last row is cut short"
            }
        );
        let sigma_dir = data.join("rules/sigma");
        let (sigma, sigma_summary) = sigma_rules(&sigma_dir)?;
        println!(
            "SigmaHQ rules given ({}): {sigma_summary}",
            sigma_dir.display()
        );
        let hour = hour.as_ref().ok_or("the demo hour is parsed for part 1")?;
        matching(
            &builtin,
            &pack,
            &sigma,
            &demo_audit,
            &perfspec.batches,
            hour,
        )?;
    }
    if let (true, Some(hour)) = (parts.contains(&2), &hour) {
        ingest_share(&builtin, hour)?;
    }
    if parts.contains(&3) {
        println!();
        println!(
            "3. Ingest to alert delivered (webhook on 127.0.0.1; {WARMUP} warm-up + {MEASURED} batches of \
             {BATCH} demo audit events + 1 trigger, {} batches/s)",
            1000 / PACE.as_millis()
        );
        latency(&builtin, &demo_audit)?;
    }
    println!();
    println!("total bench time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Part 1: matching throughput.
fn matching(
    builtin: &RuleSet,
    pack: &Detector,
    sigma: &Detector,
    demo_audit: &Batches,
    perfspec: &Batches,
    hour: &Hour,
) -> Result<(), Error> {
    println!();
    println!("1. Matching throughput, one thread (Detector::detect; events parsed beforehand)");
    header();
    let rows = [
        ("built-in pack", pack, "demo audit", demo_audit),
        ("built-in pack", pack, "PerfSPEC audit", perfspec),
        ("SigmaHQ (all given)", sigma, "demo audit", demo_audit),
        ("SigmaHQ (all given)", sigma, "PerfSPEC audit", perfspec),
    ];
    let mut pack_demo_rate = 0.0;
    for (i, (rules, d, stream, batches)) in rows.into_iter().enumerate() {
        let r = run_detect(d, batches);
        if i == 0 {
            pack_demo_rate = r.per_cpu();
        }
        r.print(rules, stream);
    }
    // The rest of the demo hour, by kind: what the pack costs on the bulk of ingest.
    let mut kinds: Vec<Kind> = hour.batches.iter().map(|(s, _)| s.kind).collect();
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    for kind in kinds.into_iter().filter(|k| *k != Kind::Audit) {
        let of_kind: Batches = hour
            .batches
            .iter()
            .filter(|(s, _)| s.kind == kind)
            .cloned()
            .collect();
        run_detect(pack, &of_kind).print("built-in pack", &format!("demo {}", kind.as_str()));
    }
    let live = run_live(builtin, demo_audit)?;
    live.throughput
        .print("built-in, Live::process", "demo audit");
    println!(
        "   live path per pass: {} matches, {} alerts opened (the journal is fsynced for every batch with matches), \
         {} batches of {BATCH}; wall includes the journal's fsync, CPU does not",
        live.matches, live.alerts, live.batches
    );
    println!(
        "   goal >= 500,000 audit events/s per core with the built-in pack: {} ({:.0}/s)",
        verdict(pack_demo_rate >= 500_000.0),
        pack_demo_rate
    );
    println!("   where the built-in pack's time goes (one thread, CPU):");
    profile(pack, "demo audit", demo_audit);
    profile(pack, "PerfSPEC audit", perfspec);
    Ok(())
}

/// Part 2: detection's share of ingest CPU.
fn ingest_share(builtin: &RuleSet, hour: &Hour) -> Result<(), Error> {
    println!();
    println!(
        "2. Detection's share of ingest CPU (demo hour, all formats, into a fresh store; fsync on)"
    );
    let interleaved = interleave(&hour.batches, WINDOW_NS);
    println!(
        "   {} events; parsing them took {:.2} s CPU (not in the figures below). Two orders:\n   \
         - files: one batch per generated chunk of <= 2 MiB ({} batches), file after file, as an import \
         loads them;\n   - live: each file cut into {} s slices of event time, all slices in time order \
         ({} batches), as agents stream them",
        count(&hour.batches),
        hour.parse_cpu.as_secs_f64(),
        hour.batches.len(),
        WINDOW_NS / 1_000_000_000,
        interleaved.len()
    );
    println!(
        "   {:<26} {:>7} {:>7} {:>12} {:>13} {:>8} {:>8} {:>7} {:>7}",
        "run",
        "CPU s",
        "wall s",
        "events/CPU s",
        "events/wall s",
        "detect s",
        "matches",
        "late",
        "alerts"
    );
    let n = count(&hour.batches) as f64;
    for (order, batches) in [("files", &hour.batches), ("live", &interleaved)] {
        let mut cpu = [Duration::ZERO; 2];
        let mut detect_ns = 0u64;
        for round in 1..=2 {
            for with in [false, true] {
                let r = ingest_run(builtin, batches, with)?;
                let opt = |x: u64| if with { x.to_string() } else { "-".into() };
                println!(
                    "   {:<26} {:>7.2} {:>7.2} {:>12.0} {:>13.0} {:>8} {:>8} {:>7} {:>7}",
                    format!(
                        "{order} {round}, {}",
                        if with { "with Live" } else { "no observer" }
                    ),
                    r.cpu.as_secs_f64(),
                    r.wall.as_secs_f64(),
                    n / r.cpu.as_secs_f64(),
                    n / r.wall.as_secs_f64(),
                    if with {
                        format!("{:.2}", r.detect_ns as f64 / 1e9)
                    } else {
                        "-".into()
                    },
                    opt(r.matches),
                    opt(r.late),
                    opt(r.alerts),
                );
                cpu[with as usize] += r.cpu;
                detect_ns += r.detect_ns;
            }
        }
        let (without, with) = (cpu[0].as_secs_f64(), cpu[1].as_secs_f64());
        let share = (with - without) / without;
        let share_parsed = (with - without) / (without + 2.0 * hour.parse_cpu.as_secs_f64());
        println!(
            "   {order}: detection adds {:.1}% to ingest CPU (both rounds summed; {:.1}% counting parsing as \
             part of ingest; Live's own timer, all but alert writing: {:.1}%); goal <= 15%: {}",
            share * 100.0,
            share_parsed * 100.0,
            detect_ns as f64 / 1e9 / without * 100.0,
            verdict(share <= 0.15)
        );
    }
    println!(
        "   (\"late\": matches older than the correlation stage had already released, 5 s lateness, left out \
         of correlations)"
    );
    by_kind(builtin, hour)
}

/// Where detection's ingest time goes, by source kind: one pass of `Detector::detect` (matching only)
/// against one pass of `Live::process` (a fresh one per kind; matching, correlations, candidates, alert
/// journal, baselines) over the hour's batches as ingest hands them over, with `Live`'s own timer
/// (`detect_nanos`: all but raising alerts); the rule matching most.
fn by_kind(builtin: &RuleSet, hour: &Hour) -> Result<(), Error> {
    println!("   by kind, one pass each (thread CPU):");
    println!(
        "   {:<10} {:>8} {:>8} {:>10} {:>8} {:>10} {:>7}  rule matching most",
        "kind", "events", "matches", "detect ms", "Live ms", "its timer", "alerts"
    );
    let mut kinds: Vec<Kind> = hour.batches.iter().map(|(s, _)| s.kind).collect();
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    for kind in kinds {
        let of_kind: Vec<&(Source, Vec<Event>)> = hour
            .batches
            .iter()
            .filter(|(s, _)| s.kind == kind)
            .collect();
        let d = Detector::new(builtin);
        let mut per_rule = vec![0u64; d.rules().len()];
        let (mut scratch, mut out) = (Scratch::default(), Vec::new());
        let c = cpu_time(THREAD);
        for (source, events) in &of_kind {
            for ev in events {
                out.clear();
                d.detect(source, ev, &mut scratch, &mut out);
                for m in &out {
                    per_rule[m.rule] += 1;
                }
            }
        }
        let detect = cpu_time(THREAD) - c;
        let top = (0..per_rule.len())
            .max_by_key(|&i| per_rule[i])
            .filter(|&i| per_rule[i] > 0)
            .map(|i| {
                let r = &d.rules()[i];
                format!(
                    "{:?} {} ({}{})",
                    r.title,
                    per_rule[i],
                    r.level,
                    if r.correlated {
                        ", feeds a correlation"
                    } else {
                        ""
                    }
                )
            })
            .unwrap_or_else(|| "-".into());
        let dir = tempfile::tempdir()?;
        let live = Live::open(d, dir.path(), LiveOptions::default())?;
        let c = cpu_time(THREAD);
        for (source, events) in &of_kind {
            live.process(source, events)?;
        }
        let processed = cpu_time(THREAD) - c;
        let m = live.metrics();
        println!(
            "   {:<10} {:>8} {:>8} {:>10.1} {:>8.1} {:>10.1} {:>7}  {top}",
            kind.as_str(),
            of_kind.iter().map(|(_, e)| e.len()).sum::<usize>(),
            m.matches.load(Ordering::Relaxed),
            detect.as_secs_f64() * 1e3,
            processed.as_secs_f64() * 1e3,
            m.detect_nanos.load(Ordering::Relaxed) as f64 / 1e6,
            m.alerts_opened.load(Ordering::Relaxed),
        );
        live.close();
    }
    Ok(())
}

/// Prints the machine.
fn machine(scale: u32) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "machine: {cores} cores, {model}; demo scale {scale}; stores and alert journals under {}",
        std::env::temp_dir().display()
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn count(b: &Batches) -> usize {
    b.iter().map(|(_, e)| e.len()).sum()
}

/// CPU time (user + system) of the process (`libc::RUSAGE_SELF`) or the calling thread.
fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: `rusage` is plain data; getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a pointer to a live, writable rusage.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(target_os = "linux")]
const THREAD: libc::c_int = libc::RUSAGE_THREAD;
#[cfg(not(target_os = "linux"))]
const THREAD: libc::c_int = libc::RUSAGE_SELF;

/// The demo generator's audit log, parsed, one batch per chunk.
fn demo_audit(cfg: &quarry_demo::DemoConfig) -> Batches {
    quarry_demo::generate(cfg)
        .filter(|c| c.format == "audit")
        .map(|c| {
            let (events, _) =
                quarry_parse::decode_all(Format::Audit, DecoderOptions::default(), &c.data, END_NS);
            (c.source, events)
        })
        .collect()
}

/// The PerfSPEC set, turned back into audit events and parsed.
struct PerfSpec {
    batches: Batches,
    /// CSV rows left out (not [`PERFSPEC_COLUMNS`] columns).
    dropped: usize,
}

fn perfspec(path: &Path) -> Result<PerfSpec, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = String::new();
    let mut dropped = 0;
    for row in csv_rows(&text) {
        if row.len() != PERFSPEC_COLUMNS {
            dropped += 1;
            continue;
        }
        lines.push_str(&perfspec_event(&row).to_string());
        lines.push('\n');
    }
    let (events, stats) = quarry_parse::decode_all(
        Format::Audit,
        DecoderOptions::default(),
        lines.as_bytes(),
        0,
    );
    let errors = events.iter().filter(|e| e.parse_error.is_some()).count();
    if errors > 0 {
        return Err(
            format!("{errors} PerfSPEC events did not parse as audit events: {stats:?}").into(),
        );
    }
    let source = Source {
        kind: Kind::Audit,
        cluster: Some("perfspec".into()),
        ..Source::default()
    };
    Ok(PerfSpec {
        batches: vec![(source, events)],
        dropped,
    })
}

/// The rows of a CSV text (RFC 4180: `"` quotes a field, `""` is a quote inside one, quoted fields may
/// hold commas and newlines). A last row without its newline is kept (possibly short).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The audit event a PerfSPEC row was flattened from (see the crate-level comment).
fn perfspec_event(row: &[String]) -> serde_json::Value {
    let col = |i: usize| row[i].as_str();
    let mut ev = serde_json::Map::new();
    let put = |m: &mut serde_json::Map<String, serde_json::Value>, k: &str, v: &str| {
        if !v.is_empty() {
            m.insert(k.to_string(), v.into());
        }
    };
    ev.insert("kind".into(), "Event".into());
    ev.insert("apiVersion".into(), "audit.k8s.io/v1".into());
    ev.insert("level".into(), "Metadata".into());
    put(&mut ev, "auditID", col(9));
    put(&mut ev, "stage", col(10));
    put(&mut ev, "requestURI", col(8));
    put(&mut ev, "verb", col(3));
    if !col(2).is_empty() {
        ev.insert("user".into(), serde_json::json!({ "username": col(2) }));
    }
    if !col(4).is_empty() {
        let mut obj = serde_json::Map::new();
        put(&mut obj, "resource", col(4));
        put(&mut obj, "subresource", col(5));
        put(&mut obj, "name", col(6));
        let (namespace, group, version) = uri_parts(col(8));
        put(&mut obj, "namespace", namespace);
        put(&mut obj, "apiGroup", group);
        put(&mut obj, "apiVersion", version);
        ev.insert("objectRef".into(), obj.into());
    }
    if let Ok(code) = col(11).parse::<u16>() {
        ev.insert(
            "responseStatus".into(),
            serde_json::json!({ "metadata": {}, "code": code }),
        );
    }
    put(&mut ev, "requestReceivedTimestamp", col(1));
    ev.into()
}

/// Namespace, API group and version of a resource request URI: `/api/v1/namespaces/NS/pods/x` gives
/// `("NS", "", "v1")`, `/apis/apps/v1/namespaces/NS/deployments` gives `("NS", "apps", "v1")`. A request
/// for the namespace object itself (`/api/v1/namespaces/NS`) has no namespace.
fn uri_parts(uri: &str) -> (&str, &str, &str) {
    let path = uri.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return ("", "", ""),
    };
    let namespace = match rest {
        ["namespaces", ns, _, ..] => ns,
        _ => "",
    };
    (namespace, group, version)
}

/// Every SigmaHQ rule given, compiled, with a summary of what loaded.
fn sigma_rules(dir: &Path) -> Result<(Detector, String), Error> {
    let files = quarry_detect::rule_files(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .len();
    let mut set = RuleSet::new();
    set.add_path(dir)?;
    let d = Detector::new(&set);
    // Problems after the set's own are the detector's: duplicate ids (left out of `rules`) and rules that
    // do not compile (kept in `rules`, in no engine).
    let extra = &d.problems()[set.problems.len()..];
    let failed = extra
        .iter()
        .filter(|p| p.rule.is_some() && !p.message.starts_with("rule id "))
        .count();
    let usable = d.rules().len() - failed;
    let mut by_message: HashMap<String, usize> = HashMap::new();
    for p in d.problems() {
        // Group by the message's gist: the log source Quarry does not collect, or the message's start.
        let kind = match p.kind {
            ProblemKind::Error => "error",
            ProblemKind::Unsupported => "unsupported",
        };
        let text = match p.message.split_once(" is not collected by Quarry") {
            Some((ls, _)) => format!("{ls} not collected"),
            None => p.message.chars().take(90).collect(),
        };
        let gist = format!("{kind}: {text}");
        *by_message.entry(gist).or_default() += 1;
    }
    let mut gists: Vec<_> = by_message.into_iter().collect();
    gists.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let audit_files = quarry_detect::rule_files(&dir.join("rules/application/kubernetes"))
        .map(|f| f.len())
        .unwrap_or(0);
    let mut s = format!(
        "{files} files, {} rules read, {usable} load and compile ({audit_files} files are Kubernetes \
         audit rules), {} problems",
        set.rules.len() + set.problems.iter().filter(|p| p.rule.is_some()).count(),
        d.problems().len()
    );
    for (gist, n) in gists {
        s.push_str(&format!("\n  {n:>4} x {gist}"));
    }
    Ok((d, s))
}

/// One throughput figure.
struct Throughput {
    events: u64,
    wall: Duration,
    cpu: Duration,
    /// Matches in one pass.
    matches: u64,
    /// Events in one pass.
    pass_events: usize,
}

impl Throughput {
    fn per_cpu(&self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    fn print(&self, rules: &str, stream: &str) {
        let per_wall = self.events as f64 / self.wall.as_secs_f64().max(1e-9);
        println!(
            "   {:<26} {:<15} {:>8} {:>13.0} {:>13.0} {:>9.0} {:>8}",
            rules,
            stream,
            self.pass_events,
            self.per_cpu(),
            per_wall,
            self.cpu.as_nanos() as f64 / self.events.max(1) as f64,
            self.matches
        );
    }
}

fn header() {
    println!(
        "   {:<26} {:<15} {:>8} {:>13} {:>13} {:>9} {:>8}",
        "rules", "events", "n/pass", "events/CPU s", "events/wall s", "ns/event", "matches"
    );
}

/// `Detector::detect` over `batches`, pass after pass for at least [`MIN_WORK`] (after an untimed pass
/// that counts the matches).
fn run_detect(d: &Detector, batches: &Batches) -> Throughput {
    run_detect_for(d, batches, MIN_WORK)
}

/// As [`run_detect`], for at least `work`.
fn run_detect_for(d: &Detector, batches: &Batches, work: Duration) -> Throughput {
    let mut scratch = Scratch::default();
    let mut out: Vec<Match> = Vec::new();
    let pass = |out: &mut Vec<Match>, scratch: &mut Scratch| {
        let mut matches = 0u64;
        for (source, events) in batches {
            for ev in events {
                out.clear();
                d.detect(source, ev, scratch, out);
                matches += out.len() as u64;
            }
        }
        std::hint::black_box(matches)
    };
    let matches = pass(&mut out, &mut scratch);
    let pass_events = count(batches);
    let (t, c) = (Instant::now(), cpu_time(THREAD));
    let mut events = 0u64;
    while t.elapsed() < work && pass_events > 0 {
        pass(&mut out, &mut scratch);
        events += pass_events as u64;
    }
    Throughput {
        events,
        wall: t.elapsed(),
        cpu: cpu_time(THREAD) - c,
        matches,
        pass_events,
    }
}

/// The live path's figures.
struct LiveRun {
    throughput: Throughput,
    matches: u64,
    alerts: u64,
    batches: usize,
}

/// `Live::process` over the demo audit events in batches of [`BATCH`], each pass with a fresh `Live`.
fn run_live(set: &RuleSet, batches: &Batches) -> Result<LiveRun, Error> {
    let mut wall = Duration::ZERO;
    let mut cpu = Duration::ZERO;
    let mut events = 0u64;
    let mut first = None;
    let n_batches: usize = batches.iter().map(|(_, e)| e.len().div_ceil(BATCH)).sum();
    while wall < MIN_WORK {
        let dir = tempfile::tempdir()?;
        let live = Live::open(Detector::new(set), dir.path(), LiveOptions::default())?;
        let (t, c) = (Instant::now(), cpu_time(THREAD));
        for (source, evs) in batches {
            for chunk in evs.chunks(BATCH) {
                live.process(source, chunk)?;
            }
        }
        wall += t.elapsed();
        cpu += cpu_time(THREAD) - c;
        events += count(batches) as u64;
        let m = live.metrics();
        first.get_or_insert((
            m.matches.load(Ordering::Relaxed),
            m.alerts_opened.load(Ordering::Relaxed),
        ));
        live.close();
    }
    let (matches, alerts) = first.unwrap_or_default();
    Ok(LiveRun {
        throughput: Throughput {
            events,
            wall,
            cpu,
            matches,
            pass_events: count(batches),
        },
        matches,
        alerts,
        batches: n_batches,
    })
}

/// Where the built-in pack's time goes on an audit stream: the flattened fields per event, and the CPU
/// time of reading an event into the field table's slots ([`SigmaEvent::new`], one hash lookup per field)
/// against the whole of [`Detector::detect`] (that plus rsigma's candidate index, rule evaluation and the
/// matches built).
fn profile(pack: &Detector, name: &str, batches: &Batches) {
    let n = count(batches);
    if n == 0 {
        return;
    }
    let fields: usize = batches
        .iter()
        .flat_map(|(_, e)| e.iter())
        .map(|e| e.fields.len())
        .sum();
    let biggest = batches
        .iter()
        .flat_map(|(_, e)| e.iter())
        .map(|e| e.fields.len())
        .max()
        .unwrap_or(0);
    let mut scratch = Scratch::default();
    let (t, c) = (Instant::now(), cpu_time(THREAD));
    let mut events = 0u64;
    while t.elapsed() < MIN_WORK / 4 {
        for (source, evs) in batches {
            for ev in evs {
                std::hint::black_box(SigmaEvent::new(
                    pack.field_table(),
                    source,
                    ev,
                    &mut scratch,
                ));
            }
        }
        events += n as u64;
    }
    let read = (cpu_time(THREAD) - c).as_nanos() as f64 / events as f64;
    let whole = run_detect_for(pack, batches, MIN_WORK / 4);
    let whole = whole.cpu.as_nanos() as f64 / whole.events.max(1) as f64;
    println!(
        "   {name}: {:.0} flattened fields per event (most {biggest}); reading them into slots {read:.0} \
         ns/event of {whole:.0} ({:.0}%), rule evaluation and matches the rest",
        fields as f64 / n as f64,
        read / whole * 100.0
    );
}

/// The demo hour, every format, parsed as the agent would (one decoder per file, Java stack traces
/// joined), one batch per generated chunk.
struct Hour {
    batches: Batches,
    parse_cpu: Duration,
}

fn demo_hour(cfg: &quarry_demo::DemoConfig) -> Hour {
    let chunks: Vec<quarry_demo::Chunk> = quarry_demo::generate(cfg).collect();
    let c = cpu_time(THREAD);
    let mut decoders: HashMap<String, (Decoder, Source)> = HashMap::new();
    let mut batches = Vec::new();
    for chunk in &chunks {
        let (d, _) = decoders.entry(chunk.path.clone()).or_insert_with(|| {
            (
                quarry_demo::hunt::decoder_for(chunk.format),
                chunk.source.clone(),
            )
        });
        let mut events = Vec::new();
        d.feed(&chunk.data, cfg.end_ns, &mut events);
        if !events.is_empty() {
            batches.push((chunk.source.clone(), events));
        }
    }
    let mut rest: Vec<_> = decoders.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, (mut d, source)) in rest {
        let mut events = Vec::new();
        d.finish(cfg.end_ns, &mut events);
        if !events.is_empty() {
            batches.push((source, events));
        }
    }
    Hour {
        batches,
        parse_cpu: cpu_time(THREAD) - c,
    }
}

/// `batches` as live agents would send them: each batch cut into slices of `window_ns` of event time,
/// and all slices ordered by their start (a batch's own order kept within a slice and between equals).
fn interleave(batches: &Batches, window_ns: i64) -> Batches {
    let mut slices: Vec<(i64, usize, Source, Vec<Event>)> = Vec::new();
    for (b, (source, events)) in batches.iter().enumerate() {
        let mut current: Option<(i64, Vec<Event>)> = None;
        for ev in events {
            let w = ev.ts.div_euclid(window_ns);
            match &mut current {
                Some((cw, evs)) if *cw == w => evs.push(ev.clone()),
                _ => {
                    if let Some((cw, evs)) = current.take() {
                        slices.push((cw, b, source.clone(), evs));
                    }
                    current = Some((w, vec![ev.clone()]));
                }
            }
        }
        if let Some((cw, evs)) = current {
            slices.push((cw, b, source.clone(), evs));
        }
    }
    slices.sort_by_key(|(w, b, _, _)| (*w, *b));
    slices.into_iter().map(|(_, _, s, e)| (s, e)).collect()
}

/// One ingest run's figures.
struct IngestRun {
    cpu: Duration,
    wall: Duration,
    /// Live's own timer (`detect_nanos`).
    detect_ns: u64,
    /// Live's rule matches, matches too late for correlations, alerts opened.
    matches: u64,
    late: u64,
    alerts: u64,
}

/// Stores the hour in a fresh store, with or without `Live`; times ingest and commit.
fn ingest_run(set: &RuleSet, batches: &Batches, with_live: bool) -> Result<IngestRun, Error> {
    let dir = tempfile::tempdir()?;
    let live = if with_live {
        let live = Arc::new(Live::open(
            Detector::new(set),
            &dir.path().join("alerts"),
            LiveOptions::default(),
        )?);
        Live::start_ticker(&live);
        Some(live)
    } else {
        None
    };
    let mut cfg = StoreConfig::new(dir.path().join("store"));
    cfg.observer = live.clone().map(|l| l as Arc<dyn Observer>);
    let store = Store::open(cfg)?;
    let input = batches.clone();
    let (t, c) = (Instant::now(), cpu_time(libc::RUSAGE_SELF));
    for (source, events) in input {
        store.ingest(BatchKey::default(), &source, events)?;
    }
    store.commit()?;
    let (wall, cpu) = (t.elapsed(), cpu_time(libc::RUSAGE_SELF) - c);
    store.close()?;
    let metric = |f: fn(&quarry_detect::LiveMetrics) -> &std::sync::atomic::AtomicU64| {
        live.as_ref()
            .map_or(0, |l| f(l.metrics()).load(Ordering::Relaxed))
    };
    let run = IngestRun {
        cpu,
        wall,
        detect_ns: metric(|m| &m.detect_nanos),
        matches: metric(|m| &m.matches),
        late: metric(|m| &m.correlation_late),
        alerts: metric(|m| &m.alerts_opened),
    };
    if let Some(l) = live.and_then(|l| Arc::try_unwrap(l).ok()) {
        l.close();
    }
    Ok(run)
}

/// An alert as the webhook receiver saw it.
struct Arrival {
    at: Instant,
    rule_id: String,
    /// The user of its first evidence event (audit alerts).
    user: String,
}

/// Starts the webhook receiver on a free local port; arrivals come out of the returned channel.
fn receiver() -> Result<(u16, mpsc::Receiver<Arrival>), Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("bench-webhook".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let tx = tx.clone();
                let _ = std::thread::Builder::new()
                    .name("bench-webhook-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(stream, &tx) {
                            eprintln!("webhook receiver: {e}");
                        }
                    });
            }
        })?;
    Ok((port, rx))
}

/// Serves one connection: requests one after the other (keep-alive), each read whole by its
/// Content-Length.
fn serve(stream: TcpStream, tx: &mpsc::Sender<Arrival>) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(()); // the client closed the connection
        }
        let mut length = None;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Err("connection closed inside a request's headers".into());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>().map_err(|_| {
                        format!("bad Content-Length {value:?} in {}", line.trim_end())
                    })?);
                }
            }
        }
        let length = length.ok_or_else(|| format!("no Content-Length in {}", line.trim_end()))?;
        let mut body = vec![0; length];
        r.read_exact(&mut body)?;
        let at = Instant::now();
        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
        let alert: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the webhook body is not JSON: {e}"))?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let arrival = Arrival {
            at,
            rule_id: text(&alert["rule_id"]),
            user: text(&alert["evidence"][0]["user"]["username"]),
        };
        if tx.send(arrival).is_err() {
            return Ok(());
        }
    }
}

/// The events the latency test can plant, in order of preference.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// A ClusterRoleBinding to cluster-admin created.
    ClusterAdminBinding,
    /// An exec session opened in a kube-system pod.
    ExecInKubeSystem,
}

impl Trigger {
    const ALL: [Trigger; 2] = [Trigger::ClusterAdminBinding, Trigger::ExecInKubeSystem];

    fn describe(self) -> &'static str {
        match self {
            Trigger::ClusterAdminBinding => "a ClusterRoleBinding to cluster-admin",
            Trigger::ExecInKubeSystem => "an exec session into a kube-system pod",
        }
    }

    /// The audit event, by `user`, number `i`, at `ts`, parsed by the audit parser.
    fn event(self, user: &str, i: usize, ts: i64) -> Result<Event, Error> {
        let time = quarry_model::time::format_rfc3339_nanos(ts);
        let common = serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1",
            "auditID": format!("00000000-0000-4000-8000-{i:012}"),
            "user": {"username": user, "groups": ["system:authenticated"]},
            "sourceIPs": ["192.0.2.10"], "userAgent": "kubectl/v1.29.0 (linux/amd64) kubernetes/3f7a50f",
            "requestReceivedTimestamp": time, "stageTimestamp": time,
        });
        let specific = match self {
            Trigger::ClusterAdminBinding => {
                let name = format!("bench-admin-{i}");
                serde_json::json!({
                    "level": "RequestResponse", "stage": "ResponseComplete", "verb": "create",
                    "requestURI": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create",
                    "objectRef": {"resource": "clusterrolebindings", "name": name,
                                  "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"},
                    "responseStatus": {"metadata": {}, "code": 201},
                    "requestObject": {"kind": "ClusterRoleBinding",
                        "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": name},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                    "name": "cluster-admin"},
                        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]},
                })
            }
            Trigger::ExecInKubeSystem => serde_json::json!({
                "level": "Metadata", "stage": "ResponseStarted", "verb": "create",
                "requestURI": "/api/v1/namespaces/kube-system/pods/coredns-5d78c9869d-4xk2p/exec?command=sh&container=coredns&stdin=true&stdout=true&tty=true",
                "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "kube-system",
                              "name": "coredns-5d78c9869d-4xk2p", "apiVersion": "v1"},
                "responseStatus": {"metadata": {}, "code": 101},
            }),
        };
        let mut json = common;
        if let (Some(m), serde_json::Value::Object(extra)) = (json.as_object_mut(), specific) {
            m.extend(extra);
        }
        let line = format!("{json}\n");
        let (mut events, _) = quarry_parse::decode_all(
            Format::Audit,
            DecoderOptions::default(),
            line.as_bytes(),
            ts,
        );
        match (events.pop(), events.is_empty()) {
            (Some(e), true) if e.parse_error.is_none() => Ok(e),
            _ => Err(format!("the {self:?} trigger does not parse as one audit event").into()),
        }
    }
}

/// The first trigger whose event makes `Live` (the built-in pack, no sinks) open a high or critical alert
/// of its own, with that alert's rule; says what the triggers passed over did.
fn pick_trigger(set: &RuleSet, source: &Source) -> Result<(Trigger, String), Error> {
    for t in Trigger::ALL {
        let dir = tempfile::tempdir()?;
        let live = Live::open(Detector::new(set), dir.path(), LiveOptions::default())?;
        let probe = t.event("bench-probe", 0, END_NS)?;
        let mut out = Vec::new();
        live.detector()
            .detect(source, &probe, &mut Scratch::default(), &mut out);
        let matched: Vec<String> = out
            .iter()
            .map(|m| &live.detector().rules()[m.rule])
            .map(|r| format!("{:?} ({})", r.title, r.level))
            .collect();
        let opened = live.process(source, std::slice::from_ref(&probe))?;
        let described: Vec<String> = opened
            .iter()
            .map(|a| format!("{:?} ({})", a.title, a.level))
            .collect();
        live.close();
        match opened
            .iter()
            .filter(|a| a.level >= Level::High)
            .max_by_key(|a| a.level)
        {
            Some(a) => {
                println!(
                    "   trigger: {} by a new user each time; opens {} alerts: {}",
                    t.describe(),
                    opened.len(),
                    described.join(", ")
                );
                println!(
                    "   measured: the {:?} alert ({}) of each",
                    a.title, a.rule_id
                );
                return Ok((t, a.rule_id.clone()));
            }
            None => println!(
                "   not used: {} matches [{}] but opens no high or critical alert (opened: [{}])",
                t.describe(),
                matched.join(", "),
                described.join(", ")
            ),
        }
    }
    Err("no trigger event opens a high or critical alert with the built-in pack".into())
}

/// The ingest-to-alert latency test.
fn latency(set: &RuleSet, background: &Batches) -> Result<(), Error> {
    let bg: Vec<&Event> = background.iter().flat_map(|(_, e)| e.iter()).collect();
    let source = background
        .first()
        .map(|(s, _)| s.clone())
        .ok_or("no demo audit events")?;
    if bg.len() < BATCH {
        return Err(format!("only {} demo audit events; need {BATCH}", bg.len()).into());
    }
    let (trig, rule_id) = pick_trigger(set, &source)?;
    let d = Detector::new(set);

    let (port, arrivals) = receiver()?;
    let sink: Sink = format!("webhook=http://127.0.0.1:{port}/").parse()?;
    let dir = tempfile::tempdir()?;
    let live = Arc::new(Live::open(
        d,
        &dir.path().join("alerts"),
        LiveOptions {
            sinks: vec![sink],
            ..LiveOptions::default()
        },
    )?);
    Live::start_ticker(&live);
    let mut cfg = StoreConfig::new(dir.path().join("store"));
    cfg.observer = Some(live.clone() as Arc<dyn Observer>);
    let store = Store::open(cfg)?;

    // Batches and triggers prepared beforehand; the trigger goes last in its batch.
    let total = WARMUP + MEASURED;
    let mut batches = Vec::with_capacity(total);
    for i in 0..total {
        let start = (i * BATCH) % (bg.len() - BATCH + 1);
        let mut batch: Vec<Event> = bg[start..start + BATCH]
            .iter()
            .map(|e| (*e).clone())
            .collect();
        let ts = batch.last().map_or(END_NS, |e| e.ts);
        let user = format!("bench-user-{i}");
        batch.push(trig.event(&user, i, ts)?);
        batches.push(((rule_id.clone(), user), batch));
    }
    let mut sent: HashMap<(String, String), (usize, Instant)> = HashMap::new();
    let mut ingest_times = Vec::with_capacity(total);
    let t0 = Instant::now();
    for (i, (key, batch)) in batches.into_iter().enumerate() {
        let due = t0 + PACE * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let start = Instant::now();
        store.ingest(BatchKey::default(), &source, batch)?;
        ingest_times.push(start.elapsed());
        sent.insert(key, (i, start));
    }
    let sending = t0.elapsed();

    // Collect the arrivals (the receiver also sees the background's own alerts and the trigger's other
    // rules: only the measured rule's alerts for the planted users count).
    let mut lat_warm = Vec::new();
    let mut lat = Vec::new();
    let mut others = 0u64;
    let deadline = Instant::now() + Duration::from_secs(15);
    while lat.len() + lat_warm.len() < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(a) = arrivals.recv_timeout(left) else {
            break;
        };
        match sent.get(&(a.rule_id, a.user)) {
            Some(&(i, start)) => {
                let l = a.at.saturating_duration_since(start);
                if i < WARMUP {
                    lat_warm.push(l);
                } else {
                    lat.push(l);
                }
            }
            None => others += 1,
        }
    }
    let delivery = live.delivery();
    let (delivered, retries, dead) = (
        delivery.delivered.load(Ordering::Relaxed),
        delivery.retries.load(Ordering::Relaxed),
        delivery.dead_lettered.load(Ordering::Relaxed),
    );
    store.close()?;
    if let Ok(l) = Arc::try_unwrap(live) {
        l.close();
    }

    let missing = total - lat.len() - lat_warm.len();
    println!(
        "   sent {total} batches in {:.1} s; Store::ingest took p50 {} / p99 {} / max {} (observer, WAL \
         fsync)",
        sending.as_secs_f64(),
        ms(percentile(&mut ingest_times, 0.50)),
        ms(percentile(&mut ingest_times, 0.99)),
        ms(percentile(&mut ingest_times, 1.0))
    );
    println!(
        "   deliveries: {delivered} delivered ({others} other alerts seen by the receiver), {retries} \
         retries, {dead} dead-lettered; trigger alerts not received within 15 s: {missing}"
    );
    if lat.is_empty() {
        return Err("no trigger alert of the measured batches reached the webhook".into());
    }
    println!(
        "   ingest -> alert at webhook, {} measured: p50 {}  p99 {}  max {}  (warm-up max {})",
        lat.len(),
        ms(percentile(&mut lat, 0.50)),
        ms(percentile(&mut lat, 0.99)),
        ms(percentile(&mut lat, 1.0)),
        ms(percentile(&mut lat_warm, 1.0))
    );
    let p99 = percentile(&mut lat, 0.99);
    println!(
        "   goal p99 <= 1 s: {}",
        verdict(p99 <= Duration::from_secs(1) && missing == 0)
    );
    Ok(())
}

/// The `p` quantile (nearest rank) of `v`; zero for none.
fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
