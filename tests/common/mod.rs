//! Helpers of the end-to-end tests: the real `quarry` binary started as a child process.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn quarry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quarry"))
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

    /// Starts a server on `dir` listening on `port`.
    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Server {
        let child = quarry()
            .args(["server", "--data-dir"])
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

    /// A client of this server.
    pub fn client(&self) -> quarry_transport::Client {
        quarry_transport::Client::new(&self.url).unwrap()
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
    let c = quarry_transport::Client::new(url).unwrap();
    c.query(&quarry_transport::QueryRequest {
        query: q.to_string(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{q}: {e}"))
    .rows
}

/// POSTs `body` with curl (a real HTTP client); returns the status and the answer's body.
pub fn post(url: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
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
    let mut child = cmd
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}
