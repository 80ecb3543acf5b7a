//! Listeners: TLS (rustls) or, only when asked with `--insecure`, plain TCP.
//!
//! TLS handshakes run in their own tasks (at most 256 at once, 10 s each), so a slow or silent client
//! cannot hold up the others. A client that sends plain HTTP to the TLS port gets a short plain-text 400
//! saying to use `https://` rather than a closed connection, and every failed handshake is counted.

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use quarry_trust::x509::{parse_cert, CertInfo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Remote address.
    pub addr: SocketAddr,
    /// The client certificate verified in the handshake (mTLS), if one was presented.
    pub cert: Option<Arc<CertInfo>>,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            cert: None,
        }
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Counters of the TLS listener.
#[derive(Debug, Default)]
pub struct TlsMetrics {
    /// Handshakes completed.
    pub handshakes: AtomicU64,
    /// Handshakes that failed (bad or revoked certificates, wrong CA, plain text, timeouts).
    pub failures: AtomicU64,
}

/// A TCP listener whose connections are TLS.
pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
}

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at most; beyond, accepting waits (so silent clients cannot pile up tasks).
const MAX_HANDSHAKES: usize = 256;

impl TlsListener {
    /// Accepts TCP connections on `tcp` and completes their handshakes with `config`.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        metrics: Arc<TlsMetrics>,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, addr) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx, metrics) = (acceptor.clone(), tx.clone(), metrics.clone());
                tokio::spawn(async move {
                    let done =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, stream)).await;
                    drop(slot);
                    match done {
                        Ok(Ok(tls)) => {
                            metrics.handshakes.fetch_add(1, Ordering::Relaxed);
                            let cert = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| parse_cert(c).ok())
                                .map(Arc::new);
                            let _ = tx.send((tls, Peer { addr, cert })).await;
                        }
                        Ok(Err(e)) => {
                            metrics.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%addr, "TLS handshake failed: {e}");
                        }
                        Err(_) => {
                            metrics.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%addr, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(TlsListener { local, rx })
    }
}

/// The handshake, after turning away plain text: a TLS connection starts with a handshake record (0x16).
async fn handshake(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    if n == 1 && first[0] != 0x16 {
        let msg = "this port speaks TLS: use https:// (and --ca with Quarry's CA)\n";
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{msg}",
            msg.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "plain text sent to the TLS port",
        ));
    }
    acceptor.accept(stream).await
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task only ends with the runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            cert: None,
        })
    }
}
