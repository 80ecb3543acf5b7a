//! Helpers of the end-to-end tests: the real `quarry` binary started as a child process.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binary under test, with the tests' admin token in `QUARRY_TOKEN` (so `--server` commands
/// authenticate as a user would).
pub fn quarry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_quarry"));
    c.env("QUARRY_TOKEN", admin_token());
    c
}

/// A directory whose `auth/tokens.json` holds one admin token, made once per test process with
/// `quarry token create`, and the token.
fn token_template() -> &'static (PathBuf, String) {
    static T: OnceLock<(PathBuf, String)> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let out = run_ok(
            Command::new(env!("CARGO_BIN_EXE_quarry"))
                .args(["token", "create", "--role", "admin", "--name", "tests"])
                .arg("--data-dir")
                .arg(&dir),
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        (dir, token)
    })
}

/// Runs `cmd` to its end and fails the test, showing the command and its output, unless it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Runs `cmd` with `input` on its standard input and its standard output captured (standard error as
/// the caller set it). A process that exits without reading all of `input` is not an error here: its
/// status and output say what happened.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// The admin token every test server accepts.
pub fn admin_token() -> &'static str {
    &token_template().1
}

/// `Authorization: Bearer` with the admin token, as a curl `-H` argument.
pub fn auth_header() -> String {
    format!("Authorization: Bearer {}", admin_token())
}

/// Gives a data directory the tests' admin token (unless it has tokens already).
pub fn install_token(dir: &Path) {
    let to = dir.join("auth/tokens.json");
    if !to.exists() {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(token_template().0.join("auth/tokens.json"), to).unwrap();
    }
}

/// A client of `url` with the admin token.
pub fn client(url: &str) -> quarry_transport::Client {
    quarry_transport::Client::with_options(
        url,
        &quarry_transport::ClientOptions {
            token: Some(admin_token().to_string()),
            ..Default::default()
        },
    )
    .unwrap()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `quarry server`; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts a server on `dir` and waits until `/healthz` answers.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_on(dir, free_port(), extra)
    }

    /// Starts a server on `dir` listening on `port` in plain HTTP (the TLS tests start their own).
    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Server {
        install_token(dir);
        let child = quarry()
            .args(["server", "--insecure", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--log", "warn"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quarry server");
        let url = format!("http://127.0.0.1:{port}");
        let client = quarry_transport::Client::new(&url).unwrap();
        let started = Instant::now();
        while !client.healthy() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, url }
    }

    /// A client of this server, with the admin token.
    pub fn client(&self) -> quarry_transport::Client {
        client(&self.url)
    }

    /// Kills the server with SIGKILL (no chance to flush anything).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a query against a server and returns the rows.
pub fn query(url: &str, q: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let c = client(url);
    c.query(&quarry_transport::QueryRequest {
        query: q.to_string(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{q}: {e}"))
    .rows
}

/// GETs `url` with curl and the admin token; the answer's body, empty on an error status.
pub fn get(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-H", &auth_header()])
        .args(["-sf", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// POSTs `body` with curl (a real HTTP client) and the admin token; returns the status and the answer's
/// body.
pub fn post(url: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-H", &auth_header()]);
    cmd.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
        "--data-binary",
        "@-",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = run_with_input(cmd.arg(url), body);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}
