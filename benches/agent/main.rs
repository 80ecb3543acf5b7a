//! The node agent benchmark of the README: throughput of tail, parse, enrich, redact and ship in MiB/s per
//! core and lines/s, peak RSS and idle CPU, with one file and with 1,000 files under rotation, shipping to
//! a null sink and to a local `quarry server`; in the same run rsyslog (imfile) and syslog-ng
//! (wildcard-file) tail the same files into a local file.
//!
//! `cargo bench --bench agent -- [--mib N] [--files N] [--rotate-kib N] [--dir DIR] [--tools DIR] [--no-peers]`
//!
//! The lines are CRI container lines whose messages are the loghub corpora of `../shared/data` in turn.
//! "One file" is a pre-written file of `--mib` MiB (default 1024) read from its start; "1,000 files" is a
//! writer in this process appending `--mib` MiB in all to `--files` container logs while the collector
//! runs, renaming each file away (kubelet style) every `--rotate-kib` KiB (default 256). A run ends when every line has been
//! acknowledged (agent) or written out (peers); CPU time and peak RSS are read from `/proc` for the
//! collector's process alone, so the writer and the sink do not count. MiB/s per core is input bytes over
//! the collector's CPU seconds.
//!
//! The null sink is an HTTP server in this process that decodes every request (zstd, then the streams
//! format) and counts its events before acknowledging it, so the agent's output is checked, not dropped.
//! Peers need `apt-get install rsyslog` and syslog-ng unpacked from its .deb (see `peers.rs`).

mod peers;

use anyhow::{bail, Context, Result};
use peers::{proc_cpu, proc_peak_rss_kib, Peer, PeerKind};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(900);

struct Args {
    mib: u64,
    files: usize,
    dir: PathBuf,
    tools: PathBuf,
    peers: bool,
    rotate_kib: u64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        mib: 1024,
        files: 1000,
        dir: std::env::temp_dir().join("quarry-bench-agent"),
        tools: dirs_cache().join("quarry-bench-peers"),
        peers: true,
        rotate_kib: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--mib" => a.mib = value()?.parse()?,
            "--files" => a.files = value()?.parse()?,
            "--dir" => a.dir = value()?.into(),
            "--tools" => a.tools = value()?.into(),
            "--no-peers" => a.peers = false,
            "--rotate-kib" => a.rotate_kib = value()?.parse()?,
            "--bench" => {}
            other => bail!(
                "unknown argument {other}; usage: cargo bench --bench agent -- [--mib N] [--files N] \
                 [--dir DIR] [--tools DIR] [--no-peers] [--rotate-kib N]"
            ),
        }
    }
    Ok(a)
}

fn dirs_cache() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache"))
        .unwrap_or_else(std::env::temp_dir)
}

/// Messages for the lines: every loghub corpus, interleaved.
fn corpus() -> Result<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/node_logs/loghub");
    let mut sets = Vec::new();
    for e in fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
        let dir = e?.path();
        if !dir.is_dir() {
            continue;
        }
        for f in fs::read_dir(&dir)? {
            let p = f?.path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = fs::read(&p)?;
                let lines: Vec<String> = String::from_utf8_lossy(&text)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                sets.push(lines);
            }
        }
    }
    let longest = sets.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        for s in &sets {
            if let Some(l) = s.get(i) {
                out.push(l.clone());
            }
        }
    }
    if out.is_empty() {
        bail!("no loghub lines under {}", root.display());
    }
    Ok(out)
}

/// Writes CRI lines to `w` until `bytes` are written; returns (bytes, lines).
struct Lines<'a> {
    corpus: &'a [String],
    next: usize,
    ns: u64,
}

impl Lines<'_> {
    fn write(&mut self, w: &mut impl Write, bytes: u64) -> std::io::Result<(u64, u64)> {
        let (mut written, mut lines) = (0u64, 0u64);
        while written < bytes {
            let msg = &self.corpus[self.next % self.corpus.len()];
            self.next += 1;
            self.ns += 1_234_567;
            let s = self.ns / 1_000_000_000;
            let line = format!(
                "2026-11-23T{:02}:{:02}:{:02}.{:09}Z stdout F {msg}\n",
                s / 3600 % 24,
                s / 60 % 60,
                s % 60,
                self.ns % 1_000_000_000
            );
            w.write_all(line.as_bytes())?;
            written += line.len() as u64;
            lines += 1;
        }
        Ok((written, lines))
    }
}

/// What one collector did.
struct Run {
    name: String,
    bytes: u64,
    lines: u64,
    delivered: u64,
    wall: Duration,
    cpu: Duration,
    rss_kib: u64,
}

impl Run {
    fn print(&self) {
        let mib = self.bytes as f64 / (1 << 20) as f64;
        println!(
            "| {:<34} | {:>9.1} | {:>13.1} | {:>10.0} | {:>9.1} | {:>8.1} | {:>12} |",
            self.name,
            mib / self.cpu.as_secs_f64().max(1e-9),
            mib / self.wall.as_secs_f64(),
            self.lines as f64 / self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.rss_kib as f64 / 1024.0,
            if self.delivered == self.lines {
                "all".to_string()
            } else {
                format!("{} of {}", self.delivered, self.lines)
            },
        );
    }
}

fn header(title: &str) {
    println!("\n{title}\n");
    println!(
        "| collector                          | MiB/s/core | MiB/s (wall) |    lines/s | CPU s     | RSS MiB  | delivered    |"
    );
    println!(
        "|------------------------------------|-----------:|-------------:|-----------:|----------:|---------:|--------------|"
    );
}

// ---------------------------------------------------------------------------------------------------
// The null sink

/// An HTTP server that acknowledges `POST /api/v1/ingest/streams` after decoding it; counts events.
struct NullSink {
    url: String,
    events: Arc<AtomicU64>,
}

impl NullSink {
    fn start() -> Result<NullSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let events = Arc::new(AtomicU64::new(0));
        let ev = Arc::clone(&events);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let ev = Arc::clone(&ev);
                std::thread::spawn(move || {
                    if let Err(e) = serve(conn, &ev) {
                        eprintln!("null sink: {e:#}");
                    }
                });
            }
        });
        Ok(NullSink { url, events })
    }
}

fn serve(conn: TcpStream, events: &AtomicU64) -> Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut w = conn;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse()?;
                }
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        let (status, reply) = if line.starts_with("GET /healthz") {
            ("200 OK", "{}".to_string())
        } else {
            match zstd::decode_all(&body[..])
                .map_err(|e| e.to_string())
                .and_then(|raw| quarry_transport::decode_streams(&raw))
            {
                Ok(sections) => {
                    let n: u64 = sections.iter().map(|(_, recs)| recs.len() as u64).sum();
                    events.fetch_add(n, Ordering::Relaxed);
                    (
                        "200 OK",
                        format!(
                            "{{\"sections\":{},\"events\":{n},\"duplicates\":0}}",
                            sections.len()
                        ),
                    )
                }
                Err(e) => ("400 Bad Request", format!("{{\"error\":{e:?}}}")),
            }
        };
        write!(
            w,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        )?;
    }
}

// ---------------------------------------------------------------------------------------------------
// Processes

fn quarry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quarry"))
}

/// The agent's command; `QUARRY_BENCH_WRAP="heaptrack"` (or `"perf record -g"`) runs it under a profiler,
/// whose process is then the one measured.
fn agent_command() -> Command {
    match std::env::var("QUARRY_BENCH_WRAP") {
        Ok(w) if !w.trim().is_empty() => {
            let mut parts = w.split_whitespace();
            let mut c = Command::new(parts.next().unwrap());
            c.args(parts).arg(env!("CARGO_BIN_EXE_quarry"));
            c
        }
        _ => quarry(),
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path) -> Result<(Proc, String)> {
    let _ = fs::remove_dir_all(dir);
    let port = free_port()?;
    let child = quarry()
        .args(["server", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--log", "warn"])
        .stdout(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let client = quarry_transport::Client::new(&url)?;
    let started = Instant::now();
    while !client.healthy() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the server did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((Proc(child), url))
}

struct Agent {
    proc: Proc,
    metrics: String,
}

impl Agent {
    fn start(server: &str, pods: &Path, state: &Path) -> Result<Agent> {
        let _ = fs::remove_dir_all(state);
        let port = free_port()?;
        let child = agent_command()
            .args(["agent", "--server", server, "--state-dir"])
            .arg(state)
            .arg("--pods-root")
            .arg(pods)
            .args(["--node-name", "bench", "--no-kubernetes", "--log", "warn"])
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Agent {
            proc: Proc(child),
            metrics: format!("http://127.0.0.1:{port}/metrics"),
        })
    }

    fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    fn metric(&self, name: &str) -> Option<u64> {
        let text = reqwest::blocking::get(&self.metrics).ok()?.text().ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .map(|v| v as u64)
    }

    fn dropped(&self) -> u64 {
        let Some(text) = reqwest::blocking::get(&self.metrics)
            .ok()
            .and_then(|r| r.text().ok())
        else {
            return 0;
        };
        text.lines()
            .filter(|l| l.starts_with("quarry_agent_dropped_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Waits until `lines` events are acknowledged (or `done` says the writer failed).
    fn wait_acked(&self, lines: &dyn Fn() -> Option<u64>) -> Result<u64> {
        let started = Instant::now();
        loop {
            let acked = self.metric("quarry_agent_acked_events_total").unwrap_or(0);
            if let Some(n) = lines() {
                if acked >= n {
                    return Ok(acked);
                }
            }
            if started.elapsed() > TIMEOUT {
                bail!("only {acked} events acknowledged after {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Scenarios

/// The pre-written single file: `pods/bench_one-0_uid-0/app/0.log`.
fn one_file(dir: &Path, corpus: &[String], mib: u64) -> Result<(PathBuf, u64, u64)> {
    let pods = dir.join("one/pods");
    let path = pods.join("bench_one-0_uid-0/app/0.log");
    let meta = dir.join("one/lines");
    let want = mib << 20;
    if let (Ok(m), Ok(n)) = (fs::metadata(&path), fs::read_to_string(&meta)) {
        if m.len() >= want {
            if let Ok(n) = n.trim().parse() {
                return Ok((pods, m.len(), n));
            }
        }
    }
    let _ = fs::remove_dir_all(dir.join("one"));
    fs::create_dir_all(path.parent().unwrap())?;
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    let (bytes, lines) = Lines {
        corpus,
        next: 0,
        ns: 0,
    }
    .write(&mut w, want)?;
    w.flush()?;
    fs::write(&meta, lines.to_string())?;
    Ok((pods, bytes, lines))
}

/// The rotating writer at work: lines written so far, whether it is done, and its (bytes, lines).
struct Writing {
    written: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Result<(u64, u64)>>,
}

/// A fresh `many/pods` tree under the benchmark directory.
fn fresh_pods(a: &Args) -> Result<(PathBuf, PathBuf)> {
    let base = a.dir.join("many");
    let _ = fs::remove_dir_all(&base);
    let pods = base.join("pods");
    fs::create_dir_all(&pods)?;
    Ok((base, pods))
}

/// Writes `--mib` MiB across `--files` container logs under `pods`, a few KiB per file in turn, renaming
/// each away every `--rotate-kib` KiB.
fn rotating_writer(pods: &Path, corpus: &Arc<Vec<String>>, a: &Args) -> Writing {
    let (written, done) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (files, total, corpus) = (a.files, a.mib << 20, Arc::clone(corpus));
    let rotate = a.rotate_kib << 10;
    let (written2, done2) = (Arc::clone(&written), Arc::clone(&done));
    let pods = pods.to_path_buf();
    let handle = std::thread::spawn(move || {
        let dirs: Vec<PathBuf> = (0..files)
            .map(|i| pods.join(format!("bench_pod-{i}_uid-{i}/app")))
            .collect();
        let mut out = Vec::with_capacity(files);
        for d in &dirs {
            fs::create_dir_all(d)?;
            out.push((
                BufWriter::with_capacity(16 << 10, File::create(d.join("0.log"))?),
                0u64,
                0u32,
            ));
        }
        let mut gen = Lines {
            corpus: &corpus,
            next: 0,
            ns: 0,
        };
        let (mut bytes, mut lines) = (0u64, 0u64);
        let step = 8 << 10;
        while bytes < total {
            for (i, (w, since, rotations)) in out.iter_mut().enumerate() {
                let (b, l) = gen.write(w, step)?;
                bytes += b;
                lines += l;
                *since += b;
                if *since >= rotate {
                    w.flush()?;
                    *rotations += 1;
                    let cur = dirs[i].join("0.log");
                    fs::rename(
                        &cur,
                        dirs[i].join(format!("0.log.2026112{}-101010", *rotations)),
                    )?;
                    *w = BufWriter::with_capacity(16 << 10, File::create(&cur)?);
                    *since = 0;
                }
            }
            for (w, _, _) in out.iter_mut() {
                w.flush()?;
            }
            written2.store(lines, Ordering::Relaxed);
        }
        done2.store(true, Ordering::Relaxed);
        Ok((bytes, lines))
    });
    Writing {
        written,
        done,
        handle,
    }
}

fn agent_one_file(
    name: &str,
    sink: &str,
    pods: &Path,
    state: &Path,
    bytes: u64,
    lines: u64,
) -> Result<Run> {
    let started = Instant::now();
    let agent = Agent::start(sink, pods, state)?;
    let delivered = agent.wait_acked(&|| Some(lines))?;
    let wall = started.elapsed();
    let run = Run {
        name: name.into(),
        bytes,
        lines,
        delivered,
        wall,
        cpu: proc_cpu(agent.pid())?,
        rss_kib: proc_peak_rss_kib(agent.pid())?,
    };
    if agent.dropped() > 0 {
        eprintln!("{name}: the agent counted {} dropped", agent.dropped());
    }
    Ok(run)
}

/// The agent under the rotating writer; with `idle`, also its CPU over 10 s with nothing to read.
fn agent_rotating(
    name: &str,
    sink: &str,
    a: &Args,
    corpus: &Arc<Vec<String>>,
    idle: bool,
) -> Result<(Run, Option<f64>)> {
    let (base, pods) = fresh_pods(a)?;
    let agent = Agent::start(sink, &pods, &base.join("state"))?;
    while agent.metric("quarry_agent_files_open").is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let cpu0 = proc_cpu(agent.pid())?;
    let w = rotating_writer(&pods, corpus, a);
    let delivered = agent.wait_acked(&|| {
        w.done
            .load(Ordering::Relaxed)
            .then(|| w.written.load(Ordering::Relaxed))
    })?;
    let wall = started.elapsed();
    let (bytes, lines) = w.handle.join().unwrap()?;
    let cpu = proc_cpu(agent.pid())? - cpu0;
    let idle_share = if idle {
        let c0 = proc_cpu(agent.pid())?;
        std::thread::sleep(Duration::from_secs(10));
        Some((proc_cpu(agent.pid())? - c0).as_secs_f64() / 10.0)
    } else {
        None
    };
    if agent.dropped() > 0 {
        eprintln!("{name}: the agent counted {} dropped", agent.dropped());
    }
    Ok((
        Run {
            name: name.into(),
            bytes,
            lines,
            delivered,
            wall,
            cpu,
            rss_kib: proc_peak_rss_kib(agent.pid())?,
        },
        idle_share,
    ))
}

fn peer_one_file(kind: PeerKind, a: &Args, pods: &Path, bytes: u64, lines: u64) -> Result<Run> {
    let work = a.dir.join(format!("peer-{kind}"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let started = Instant::now();
    let mut p = Peer::start(kind, &a.tools, pods, "*/*/*.log", &work)?;
    p.wait_for_lines(lines, TIMEOUT)?;
    let run = Run {
        name: kind.to_string(),
        bytes,
        lines,
        delivered: p.output_lines()?,
        wall: started.elapsed(),
        cpu: p.cpu()?,
        rss_kib: p.peak_rss_kib()?,
    };
    p.stop()?;
    Ok(run)
}

fn peer_rotating(kind: PeerKind, a: &Args, corpus: &Arc<Vec<String>>) -> Result<Run> {
    let (_, pods) = fresh_pods(a)?;
    let work = a.dir.join(format!("peer-{kind}"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let mut p = Peer::start(kind, &a.tools, &pods, "*/*/*.log", &work)?;
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let cpu0 = p.cpu()?;
    let (bytes, lines) = rotating_writer(&pods, corpus, a).handle.join().unwrap()?;
    // a peer that loses rotated lines never reaches the count: stop once it has been quiet for 5 s
    let mut last = (p.output_lines()?, Instant::now());
    let mut finished = started.elapsed();
    while last.0 < lines && last.1.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        let n = p.output_lines()?;
        if n != last.0 {
            last = (n, Instant::now());
            finished = started.elapsed();
        }
    }
    let run = Run {
        name: format!("{kind}"),
        bytes,
        lines,
        delivered: last.0,
        wall: finished,
        cpu: p.cpu()? - cpu0,
        rss_kib: p.peak_rss_kib()?,
    };
    p.stop()?;
    Ok(run)
}

fn main() -> Result<()> {
    let a = args()?;
    fs::create_dir_all(&a.dir)?;
    let corpus = Arc::new(corpus()?);
    let peers: Vec<PeerKind> = if a.peers {
        PeerKind::ALL
            .into_iter()
            .filter(|k| match Peer::available(*k, &a.tools) {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("{k} is left out: {e:#}");
                    false
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let sink = NullSink::start()?;
    println!(
        "quarry agent benchmark: {} MiB per scenario, {} files, {} cores, peers: {:?}",
        a.mib,
        a.files,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        peers
    );

    let (pods, bytes, lines) = one_file(&a.dir, &corpus, a.mib)?;
    header(&format!(
        "One file, {:.0} MiB of CRI lines ({lines} lines), read from its start",
        bytes as f64 / (1 << 20) as f64
    ));
    let before = sink.events.load(Ordering::Relaxed);
    let run = agent_one_file(
        "quarry agent -> null sink",
        &sink.url,
        &pods,
        &a.dir.join("state"),
        bytes,
        lines,
    )?;
    assert_eq!(
        sink.events.load(Ordering::Relaxed) - before,
        lines,
        "the null sink got every line once"
    );
    run.print();
    {
        let (_server, url) = start_server(&a.dir.join("server"))?;
        agent_one_file(
            "quarry agent -> quarry server",
            &url,
            &pods,
            &a.dir.join("state"),
            bytes,
            lines,
        )?
        .print();
    }
    for k in &peers {
        peer_one_file(*k, &a, &pods, bytes, lines)?.print();
    }

    header(&format!(
        "{} files under rotation (renamed every {} KiB), {} MiB written while the collector runs",
        a.files, a.rotate_kib, a.mib
    ));
    let (run, idle) = agent_rotating("quarry agent -> null sink", &sink.url, &a, &corpus, true)?;
    run.print();
    {
        let (_server, url) = start_server(&a.dir.join("server"))?;
        agent_rotating("quarry agent -> quarry server", &url, &a, &corpus, false)?
            .0
            .print();
    }
    for k in &peers {
        peer_rotating(*k, &a, &corpus)?.print();
    }
    if let Some(idle) = idle {
        println!(
            "\nIdle: with {} files open and nothing written, the agent used {:.2}% of one core over 10 s.",
            a.files,
            idle * 100.0
        );
    }
    let _ = fs::remove_dir_all(a.dir.join("many"));
    let _ = fs::remove_dir_all(a.dir.join("server"));
    Ok(())
}
