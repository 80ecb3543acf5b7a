//! Peer collectors for the agent benchmark: rsyslog (imfile) and syslog-ng (wildcard-file), each run as
//! a foreground child process that tails the same files as `quarry agent` and writes every line,
//! unchanged and newline-terminated, to `WORK/out.log`. The driver counts those lines
//! ([`Peer::output_lines`]) and measures the process with [`proc_cpu`] and [`proc_peak_rss_kib`], the
//! same functions it uses for the agent.
//!
//! ```ignore
//! Peer::available(PeerKind::SyslogNg, tools)?;          // unpacks syslog-ng into `tools` if needed
//! let mut p = Peer::start(PeerKind::SyslogNg, tools, pods_dir, "*/*/*.log", work)?;
//! p.wait_for_lines(expected, Duration::from_secs(300))?;
//! let (cpu, rss) = (p.cpu()?, p.peak_rss_kib()?);      // before stop(): /proc/PID goes with the process
//! p.stop()?;
//! ```
//!
//! # Installing
//! - rsyslog: `apt-get install rsyslog` (Debian's package carries imfile). Without an init system (as in
//!   this project's containers) the package starts no daemon.
//! - syslog-ng conflicts with rsyslog as a Debian package, so it is unpacked, never installed:
//!   [`Peer::available`] runs `apt-get download syslog-ng-core`, then `apt-get download` for the packages
//!   of its `Depends` this machine lacks (on Debian 12: `libivykis0 libpcre3 libnet1 libwrap0`), and
//!   `dpkg -x` of each into `TOOLS/syslog-ng`; it runs with `LD_LIBRARY_PATH` set to the unpacked library
//!   directories and `--module-path=TOOLS/syslog-ng/usr/lib/syslog-ng/3.38`. If that fails, the error
//!   gives the same commands to run by hand.
//!
//! # Isolation
//! Each peer is a private instance in the foreground (`rsyslogd -n`, `syslog-ng -F`) with its
//! configuration, pid file, stderr and state (`WORK/rsyslog-state`: imfile's read positions, which is
//! rsyslog's `workDirectory`; `WORK/syslog-ng-state`: persist file and control socket) inside the work
//! directory. No socket is bound and no system log is read: rsyslog loads only imfile (no imuxsock, so
//! no /dev/log; no imklog) and keeps its own messages (`processInternalMessages`) in
//! `WORK/rsyslog-internal.log`; syslog-ng has no system() or internal() source and prints its messages to
//! `WORK/syslog-ng.stderr`. `start` removes what an earlier run left in `WORK`, so files are always read
//! from their beginning.
//!
//! # Tuning (as a user after throughput would)
//! - rsyslog 8.2302: imfile in inotify mode with the wildcard path `DIR/PATTERN`, line mode
//!   (`readMode="0"`), `maxSubmitAtOnce="4096"`, no metadata fields; a 200,000-message in-memory main
//!   queue dequeued in batches of 4,096; omfile with `asyncWriting="on"`, `ioBufferSize="4m"`,
//!   `flushOnTXEnd="off"` (so the last partial buffer reaches the file within `flushInterval`, 1 s).
//!   When the queue is full imfile waits (imfile input is flow-controlled), so nothing is dropped.
//! - syslog-ng 3.38: `wildcard-file()` with `max-files(4096)`, `flags(no-parse)` (the line is the
//!   MESSAGE), `follow-freq(1)`, `log-fetch-limit(100)`, a window of 500 messages a file
//!   (`log-iw-size(2048000)`, which syslog-ng divides by max-files), `flags(flow-control)` on the log path
//!   so a full queue pauses reading instead of dropping, and a file destination with
//!   `template("${MESSAGE}\n")`, `log-fifo-size(1000000)` and `flush-lines(1000)`. The choices made by
//!   measurement are explained in `syslog_ng_conf`.
//! - Patterns: rsyslog takes `DIR/PATTERN` as is. syslog-ng's wildcard-file has a base directory and a
//!   file-name pattern only, so `"*/*/*.log"` becomes `base-dir(DIR) filename-pattern("*.log")
//!   recursive(yes)`, which matches `*.log` at any depth below DIR (the same files in a pod-log tree);
//!   directory components other than `*` are refused. For a recursive pattern syslog-ng's directory
//!   monitor must poll (`monitor-method("poll")`, every follow-freq): its inotify monitor takes one inotify
//!   instance per directory, the kernel allows a user 128 by default (`fs.inotify.max_user_instances`), and past
//!   that syslog-ng logs "could not create directory monitoring object! Possible message loss" and never
//!   reads those directories (it read 126 of 1,000 pods here). A flat `"*.log"` uses inotify.
//!
//! # Lines
//! - Both pass lines of up to 65,535 bytes whole (rsyslog `maxMessageSize`, default 8 KiB, and syslog-ng
//!   `log-msg-size` are set to [`MAX_LINE`] = 64 KiB), so 16 KiB lines are unchanged. Longer lines differ:
//!   rsyslog truncates them to 64 KiB and discards the rest (one output line; "message too long" in
//!   `rsyslog-internal.log`), syslog-ng splits them into 64 KiB pieces (one output line per piece).
//! - Both skip empty lines (syslog-ng also a line that is just "\r"): CRI lines are never empty. A last
//!   line without its newline is held back by both until the newline comes.
//!
//! # Rename rotation (`0.log` renamed to `0.log.20261123-101010`, a new `0.log` created)
//! Measured here with 20 pod files of 50,000 lines, renamed at once, 1,000 more lines written to each
//! renamed file through the writer's still-open handle, and 50,000 lines in each new `0.log`:
//! - rsyslog reads the renamed file to its end, then the new file from its beginning: no loss and no
//!   duplicate, whether it was behind or caught up at the rename, and also when the writer went on
//!   appending to the renamed file for 3 s before creating the new one. The one loss: lines appended to
//!   the renamed file after the new `0.log` already existed and rsyslog had read the old one to its end
//!   (it then closes the old file). imfile keeps a state file per file ever followed in
//!   `rsyslog-state`. `reopenOnTruncate="on"` is for copytruncate rotation, not rename.
//! - syslog-ng 3.38.1 (Debian 12) loses lines on rename rotation. When the rename came before it had
//!   read a file, that file's content was often missing altogether (0 to 12 of the 20 files a run,
//!   flat directory with inotify or pod tree with polling alike); lines written to the renamed file
//!   after the rename were lost in most runs even when it had caught up before the rename. It reads the
//!   old file on only while the new `0.log` stays empty. In 3 of about 25 rotation runs it aborted
//!   (`log_pipe_queue: assertion failed: ((s->flags & PIF_INITIALIZED) != 0)`); [`Peer::wait_for_lines`]
//!   then fails at once with its stderr. Later syslog-ng versions reworked wildcard-file's tracking of
//!   moved files (upstream issue #3633, 2024). So with rotation in the benchmark, a syslog-ng count
//!   below the input is syslog-ng losing lines, to be reported as such.
//!
//! Duplicates were never seen from either peer.

#![allow(dead_code)] // the driver need not use every accessor

use anyhow::{anyhow, bail, Context, Result};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest line either peer passes through whole (bytes, newline excluded). Both are configured with
/// this limit: rsyslog `maxMessageSize`, syslog-ng `log-msg-size`.
pub const MAX_LINE: usize = 64 * 1024;

/// Files syslog-ng's wildcard-file source follows at once (`max-files()`): 1,000 live files plus
/// rotated ones still being drained.
const SYSLOG_NG_MAX_FILES: u32 = 4096;

/// Debian's packages a bare `syslog-ng-core` needs beside what a minimal Debian system has; the real list
/// is read from the package's `Depends` field, this is only for the error message.
const SYSLOG_NG_DEBS: &str = "syslog-ng-core libivykis0 libpcre3 libnet1 libwrap0";

/// Which peer collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    Rsyslog,
    SyslogNg,
}

impl PeerKind {
    pub const ALL: [PeerKind; 2] = [PeerKind::Rsyslog, PeerKind::SyslogNg];

    /// Short name, also used for the files a peer keeps in its work directory.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Rsyslog => "rsyslog",
            PeerKind::SyslogNg => "syslog-ng",
        }
    }
}

impl fmt::Display for PeerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A peer collector running as a child process, tailing files and writing every line to one output file.
pub struct Peer {
    kind: PeerKind,
    child: Option<Child>,
    pid: u32,
    out: PathBuf,
    stderr: PathBuf,
    /// The output file once it exists, read from `counted` on.
    reader: Option<File>,
    counted: u64,
    lines: u64,
    buf: Vec<u8>,
}

impl Peer {
    /// Checks the peer is installed (and unpacks syslog-ng into `tools_dir` if the .deb is needed — or
    /// returns an error telling the exact commands to run). Error messages say how to install.
    pub fn available(kind: PeerKind, tools_dir: &Path) -> Result<()> {
        match kind {
            PeerKind::Rsyslog => rsyslog_available().map(|_| ()),
            PeerKind::SyslogNg => syslog_ng_available(tools_dir).map(|_| ()),
        }
    }

    /// Starts the peer following every file under `dir` matching `pattern` (relative to `dir`, `*` per
    /// path component: `"*/*/*.log"` for the `/var/log/pods/<ns_pod_uid>/<container>/0.log` layout, or
    /// `"*.log"`), reading existing files from the beginning and writing each line unchanged, with a
    /// trailing newline, to `work/out.log`. Whatever an earlier run left in `work` (output, read
    /// positions) is removed first, so every start reads the files from their beginning. Returns once
    /// the peer has written its pid file.
    pub fn start(
        kind: PeerKind,
        tools_dir: &Path,
        dir: &Path,
        pattern: &str,
        work: &Path,
    ) -> Result<Peer> {
        check_pattern(pattern)?;
        let dir = fs::canonicalize(dir)
            .with_context(|| format!("directory to follow {}", dir.display()))?;
        fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
        let work = fs::canonicalize(work)?;
        for p in [&dir, &work] {
            let s = p
                .to_str()
                .ok_or_else(|| anyhow!("{} is not UTF-8", p.display()))?;
            if s.contains(['"', '\\', '\n', '\'', '`', '$']) {
                bail!("{s}: quotes, backslashes, `$` and newlines cannot go into a peer's configuration");
            }
        }
        let name = kind.name();
        let out = work.join("out.log");
        let conf = work.join(format!("{name}.conf"));
        let pidfile = work.join(format!("{name}.pid"));
        let stderr = work.join(format!("{name}.stderr"));
        let state = work.join(format!("{name}-state"));
        for f in [&out, &pidfile, &stderr, &work.join("rsyslog-internal.log")] {
            remove_file_if_exists(f)?;
        }
        if state.exists() {
            fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))?;
        }
        fs::create_dir_all(&state)?;

        let mut cmd;
        match kind {
            PeerKind::Rsyslog => {
                let rsyslogd = rsyslog_available()?;
                fs::write(&conf, rsyslog_conf(&dir, pattern, &work, &state, &out))?;
                cmd = Command::new(rsyslogd);
                cmd.arg("-n").arg("-f").arg(&conf).arg("-i").arg(&pidfile);
            }
            PeerKind::SyslogNg => {
                let sng = syslog_ng_available(tools_dir)?;
                fs::write(&conf, syslog_ng_conf(&sng.version, &dir, pattern, &out)?)?;
                cmd = Command::new(&sng.binary);
                cmd.arg("-F")
                    .arg("--no-caps")
                    .arg("--stderr")
                    .arg(format!("--module-path={}", sng.module_dir.display()))
                    .arg(format!("--cfgfile={}", conf.display()))
                    .arg(format!(
                        "--persist-file={}",
                        state.join("syslog-ng.persist").display()
                    ))
                    .arg(format!("--pidfile={}", pidfile.display()))
                    .arg(format!(
                        "--control={}",
                        state.join("syslog-ng.ctl").display()
                    ))
                    .env("LD_LIBRARY_PATH", &sng.library_path);
            }
        }
        let log = File::create(&stderr)?;
        let child = cmd
            .current_dir(&work)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id();
        let mut peer = Peer {
            kind,
            child: Some(child),
            pid,
            out,
            stderr,
            reader: None,
            counted: 0,
            lines: 0,
            buf: vec![0; 1 << 20],
        };
        // Started means: the daemon parsed its configuration and wrote its pid file.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = fs::read_to_string(&pidfile) {
                if s.trim() == pid.to_string() {
                    return Ok(peer);
                }
            }
            peer.check_running()?;
            if Instant::now() > deadline {
                let tail = peer.stderr_tail();
                bail!(
                    "{name} did not write {} within 20 s; its output:\n{tail}",
                    pidfile.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file the peer writes every line to (`work/out.log`).
    pub fn output_path(&self) -> &Path {
        &self.out
    }

    /// Lines in the output file so far. Reads only what was appended since the last call.
    pub fn output_lines(&mut self) -> Result<u64> {
        if self.reader.is_none() {
            match File::open(&self.out) {
                Ok(f) => self.reader = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e).with_context(|| format!("opening {}", self.out.display())),
            }
        }
        let f = self.reader.as_mut().expect("opened above");
        let len = f.metadata()?.len();
        if len < self.counted {
            bail!(
                "{} shrank from {} to {len} bytes",
                self.out.display(),
                self.counted
            );
        }
        f.seek(SeekFrom::Start(self.counted))?;
        loop {
            let n = f.read(&mut self.buf)?;
            if n == 0 {
                break;
            }
            self.counted += n as u64;
            self.lines += self.buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        Ok(self.lines)
    }

    /// Waits until `output_lines() >= n` or `timeout` passes; returns whether reached. Polls every
    /// 10 ms, and fails at once if the peer exited.
    pub fn wait_for_lines(&mut self, n: u64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output_lines()? >= n {
                return Ok(true);
            }
            self.check_running()?;
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// CPU time (user + system, all threads) the peer used so far.
    pub fn cpu(&self) -> Result<Duration> {
        proc_cpu(self.pid)
    }

    /// Peak resident set size in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> Result<u64> {
        proc_peak_rss_kib(self.pid)
    }

    /// Stops the peer (SIGTERM, then SIGKILL after 5 s) and reaps it.
    pub fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_none() {
            // SAFETY: kill(2) on our own child's pid, which is not reaped yet so cannot be reused.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait()?.is_none() {
                if Instant::now() >= deadline {
                    eprintln!(
                        "{} (pid {}) ignored SIGTERM for 5 s: killing it",
                        self.kind, self.pid
                    );
                    child.kill()?;
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Err if the child has exited, with the end of what it printed.
    fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was stopped", self.kind)
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "{} exited ({status}); its output:\n{}",
                self.kind,
                self.stderr_tail()
            );
        }
        Ok(())
    }

    fn stderr_tail(&self) -> String {
        let s = fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Peer {
    /// A peer left running (a panicking driver) is killed, not orphaned.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time (user + system, all threads) process `pid` used so far, from `/proc/PID/stat`.
pub fn proc_cpu(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("{path}: no ')'"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("{path}: no field {n}"))
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_nanos(
        ticks * 1_000_000_000 / clock_ticks_per_second(),
    ))
}

/// Peak resident set size of process `pid` in KiB, `VmHWM` of `/proc/PID/status`.
pub fn proc_peak_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("{path}: no VmHWM line"))
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn remove_file_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

/// A relative glob: `/`-separated, no empty, `.` or `..` components.
fn check_pattern(pattern: &str) -> Result<()> {
    if pattern.starts_with('/')
        || pattern
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        || pattern.contains(['"', '\\', '\n', '\'', '`', '$'])
    {
        bail!("pattern {pattern:?}: want a relative glob such as \"*/*/*.log\" or \"*.log\"");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// rsyslog

/// rsyslogd's path, once rsyslogd and its imfile module are found.
fn rsyslog_available() -> Result<PathBuf> {
    const HOW: &str = "install it with `apt-get install rsyslog` (Debian package; imfile is in it). \
                       Where an init system runs, the package also starts the system's own rsyslogd; \
                       the benchmark never uses that one";
    let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("rsyslogd not found: {HOW}"))?;
    let output = Command::new(&bin)
        .arg("-v")
        .output()
        .with_context(|| format!("running {} -v: {HOW}", bin.display()))?;
    if !output.status.success() {
        bail!("{} -v failed: {HOW}", bin.display());
    }
    let imfile = fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("rsyslog/imfile.so"))
        .chain([PathBuf::from("/usr/lib/rsyslog/imfile.so")])
        .any(|p| p.is_file());
    if !imfile {
        bail!("rsyslog's imfile module (imfile.so) not found: {HOW}");
    }
    Ok(bin)
}

/// rsyslog tuned for throughput: imfile in inotify mode with a wildcard path, a large in-memory main
/// queue with big dequeue batches, and omfile writing through a large buffer on its own thread,
/// flushed only when the buffer fills or once a second.
fn rsyslog_conf(dir: &Path, pattern: &str, work: &Path, state: &Path, out: &Path) -> String {
    let file = dir.join(pattern);
    let (work, state, out, file) = (
        work.display(),
        state.display(),
        out.display(),
        file.display(),
    );
    format!(
        r#"# Written by the Quarry agent benchmark (benches/agent/peers.rs). Private instance: no /dev/log,
# no kernel log, state and pid file under {work}.
global(
  workDirectory="{state}"
  maxMessageSize="{max_line}"
  processInternalMessages="on"
  parser.escapeControlCharactersOnReceive="off"
)
main_queue(
  queue.type="LinkedList"
  queue.size="200000"
  queue.dequeueBatchSize="4096"
  queue.workerThreads="1"
)
module(load="imfile" mode="inotify")
template(name="line" type="string" string="%msg%\n")

ruleset(name="tail") {{
  action(type="omfile" file="{out}" template="line"
         asyncWriting="on" ioBufferSize="4m" flushOnTXEnd="off" flushInterval="1")
}}

input(type="imfile" file="{file}" tag="tail" ruleset="tail"
      readMode="0" freshStartTail="off" reopenOnTruncate="on"
      maxSubmitAtOnce="4096" addMetadata="off" needParse="off")

# rsyslog's own messages (start, stop, errors) land here, not in the output.
action(type="omfile" file="{work}/rsyslog-internal.log")
"#,
        max_line = MAX_LINE,
    )
}

// ---------------------------------------------------------------------------------------------------
// syslog-ng

/// Where the unpacked syslog-ng is.
struct SyslogNg {
    binary: PathBuf,
    module_dir: PathBuf,
    /// Module directory's name, e.g. "3.38": the `@version` its configuration declares.
    version: String,
    library_path: String,
}

impl SyslogNg {
    fn find(root: &Path) -> Result<SyslogNg> {
        let binary = root.join("usr/sbin/syslog-ng");
        if !binary.is_file() {
            bail!("{} not found", binary.display());
        }
        let lib = root.join("usr/lib/syslog-ng");
        let module_dir = fs::read_dir(&lib)
            .with_context(|| format!("reading {}", lib.display()))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("libaffile.so").is_file())
            .ok_or_else(|| {
                anyhow!(
                    "no module directory with libaffile.so under {}",
                    lib.display()
                )
            })?;
        let version = module_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // syslog-ng's own libraries, then the unpacked dependencies (usr/lib/<triplet>, lib/<triplet>).
        let mut dirs = vec![lib];
        for base in [root.join("usr/lib"), root.join("lib")] {
            for e in fs::read_dir(&base).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().contains("-linux-") {
                    dirs.push(e.path());
                }
            }
        }
        let mut library_path = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        if let Ok(old) = std::env::var("LD_LIBRARY_PATH") {
            if !old.is_empty() {
                library_path = format!("{library_path}:{old}");
            }
        }
        Ok(SyslogNg {
            binary,
            module_dir,
            version,
            library_path,
        })
    }

    /// `syslog-ng --version` runs (all shared libraries found).
    fn check(&self) -> Result<()> {
        let out = Command::new(&self.binary)
            .arg("--version")
            .arg(format!("--module-path={}", self.module_dir.display()))
            .env("LD_LIBRARY_PATH", &self.library_path)
            .output()
            .with_context(|| format!("running {}", self.binary.display()))?;
        if !out.status.success() {
            bail!(
                "{} --version failed: {}",
                self.binary.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// The unpacked syslog-ng under `tools_dir/syslog-ng`, unpacking it first (with `apt-get download`
/// and `dpkg -x`, no installation) when it is not there yet.
fn syslog_ng_available(tools_dir: &Path) -> Result<SyslogNg> {
    let root = tools_dir.join("syslog-ng");
    let debs = tools_dir.join("syslog-ng-debs");
    let how = format!(
        "syslog-ng conflicts with rsyslog as a Debian package, so it is unpacked instead of installed:\n  \
         mkdir -p {debs} && cd {debs} && apt-get download {SYSLOG_NG_DEBS} && \
         for d in *.deb; do dpkg -x $d {root}; done\n\
         (the library packages are those of syslog-ng-core's Depends not installed on this machine; \
         `dpkg-deb -f syslog-ng-core_*.deb Depends` lists them)",
        debs = debs.display(),
        root = root.display(),
    );
    if let Ok(sng) = SyslogNg::find(&root) {
        if sng.check().is_ok() {
            return Ok(sng);
        }
    }
    unpack_syslog_ng(&debs, &root)
        .with_context(|| format!("unpacking syslog-ng failed; to do it by hand:\n{how}"))?;
    let sng = SyslogNg::find(&root).with_context(|| how.clone())?;
    sng.check().with_context(|| how.clone())?;
    Ok(sng)
}

/// Downloads syslog-ng-core and those of its dependencies this machine lacks, and unpacks them all
/// into `root`.
fn unpack_syslog_ng(debs: &Path, root: &Path) -> Result<()> {
    fs::create_dir_all(debs).with_context(|| format!("creating {}", debs.display()))?;
    run(Command::new("apt-get")
        .arg("download")
        .arg("syslog-ng-core")
        .current_dir(debs))?;
    let core = find_deb(debs, "syslog-ng-core_")?;
    let depends = Command::new("dpkg-deb")
        .arg("-f")
        .arg(&core)
        .arg("Depends")
        .output()?;
    let depends = String::from_utf8_lossy(&depends.stdout).into_owned();
    let mut missing = Vec::new();
    for alternatives in depends.split(',') {
        let names: Vec<&str> = alternatives
            .split('|')
            .filter_map(|a| a.split_whitespace().next())
            .collect();
        if names.is_empty() || names.iter().any(|n| deb_installed(n)) {
            continue;
        }
        missing.push(names[0].to_string());
    }
    if !missing.is_empty() {
        run(Command::new("apt-get")
            .arg("download")
            .args(&missing)
            .current_dir(debs))?;
    }
    let mut unpack = vec![core];
    for name in &missing {
        unpack.push(find_deb(debs, &format!("{name}_"))?);
    }
    fs::create_dir_all(root)?;
    for deb in unpack {
        run(Command::new("dpkg").arg("-x").arg(&deb).arg(root))?;
    }
    Ok(())
}

fn deb_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", name])
        .output()
        .map(|o| o.stdout == b"installed")
        .unwrap_or(false)
}

fn find_deb(dir: &Path, prefix: &str) -> Result<PathBuf> {
    fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(".deb")
        })
        .ok_or_else(|| anyhow!("no {prefix}*.deb in {}", dir.display()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// syslog-ng tuned for throughput: wildcard-file for up to 4,096 files, raw lines (`no-parse`), larger
/// per-poll fetches and per-file windows, flow control instead of drops, and a file destination with a
/// large queue writing in big batches.
fn syslog_ng_conf(version: &str, dir: &Path, pattern: &str, out: &Path) -> Result<String> {
    // wildcard-file takes a base directory and a pattern for file names; directories below it are
    // followed with recursive(yes), at any depth.
    let parts: Vec<&str> = pattern.split('/').collect();
    let (file_pattern, dirs) = parts.split_last().expect("split yields one part at least");
    if dirs.iter().any(|d| *d != "*") {
        bail!("syslog-ng's wildcard-file cannot express {pattern:?}: directory components must be `*`");
    }
    let recursive = if dirs.is_empty() { "no" } else { "yes" };
    // syslog-ng's inotify directory monitor takes one inotify instance per directory, and the kernel
    // allows a user 128 (fs.inotify.max_user_instances): beyond that it reports "could not create
    // directory monitoring object! Possible message loss" and never reads those directories. A tree of
    // pod directories is therefore rescanned every follow-freq() instead.
    let monitor = if dirs.is_empty() { "inotify" } else { "poll" };
    let max_files = SYSLOG_NG_MAX_FILES;
    // A file is checked for new data (and for having been replaced) every follow-freq seconds once it is
    // read to its end; while data is there it is read without waiting. 1 s is syslog-ng's default and
    // was as fast here as 0.1 s, which costs 14% of a core when idle with 1,000 files.
    let follow_freq = 1;
    // Messages in flight per file (syslog-ng divides log-iw-size by max-files()), and lines one poll
    // fetches from one file. Measured with 1 file of 1M lines and 1,000 files of 2,000: a window of 500
    // reads one file 2.5x faster than the minimum of 100; fetching 100 rather than 500 a poll keeps the
    // 1,000-file burst at ~250 MiB instead of ~540 MiB at the same speed (window 1000 and fetch 1000:
    // ~900 MiB).
    let window_per_file = 500;
    let fetch_limit = 100;
    let iw_size = window_per_file * max_files;
    // With 1,000 files at most 500,000 messages are in flight, under the destination's queue; flow
    // control would hold the sources back anyway.
    Ok(format!(
        r#"@version: {version}
# Written by the Quarry agent benchmark (benches/agent/peers.rs). Private instance: no system sources,
# persist file, pid file and control socket under the work directory (command line).
options {{
  threaded(yes);
  use-dns(no); dns-cache(no); use-fqdn(no); chain-hostnames(no); keep-hostname(yes);
  log-msg-size({max_line});
  mark-freq(0);
  stats-freq(0);
}};

source s_tail {{
  wildcard-file(
    base-dir("{dir}")
    filename-pattern("{file_pattern}")
    recursive({recursive})
    max-files({max_files})
    monitor-method("{monitor}")
    follow-freq({follow_freq})
    flags(no-parse)
    log-fetch-limit({fetch_limit})
    log-iw-size({iw_size})
  );
}};

destination d_out {{
  file("{out}"
    template("${{MESSAGE}}\n")
    log-fifo-size(1000000)
    flush-lines(1000)
  );
}};

log {{ source(s_tail); destination(d_out); flags(flow-control); }};
"#,
        dir = dir.display(),
        out = out.display(),
        max_line = MAX_LINE,
    ))
}
