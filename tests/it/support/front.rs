//! A TCP front between the daemon and the simulator: it passes connections through, or
//! misbehaves the way a broken server, proxy or middlebox would (an HTTP status, a body that is
//! not JSON, bytes that are not HTTP, silence), optionally terminating TLS with the certificate
//! of `tests/fixtures/tls`. The behaviour is read per TCP connection, so switching it affects
//! the next connection attempt, not the connections already established.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// What the front does with the next connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Forward to the simulator untouched.
    Pass,
    /// Answer every request with this HTTP status and no body.
    Status(u16),
    /// Answer WebSocket upgrades with this status; negotiate passes.
    UpgradeStatus(u16),
    /// Answer negotiate with 200 and a body that is not JSON.
    GarbageBody,
    /// Answer with bytes that are not HTTP at all, then close.
    NotHttp,
    /// Accept the socket, read the request, never answer.
    Silent,
}

/// The fixture directory with `ca.pem`, `server.pem` and `server.key`.
pub(crate) fn tls_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

/// A TLS acceptor presenting the fixture certificate (issued by the fixture CA to
/// `localhost` and `127.0.0.1`).
pub(crate) fn fixture_acceptor() -> TlsAcceptor {
    let dir = tls_fixtures();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem readable")
        .collect::<Result<_, _>>()
        .expect("server.pem parses");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key parses");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key match");
    TlsAcceptor::from(Arc::new(config))
}

/// The front: listens on 127.0.0.1, forwards to `upstream` when passing.
pub(crate) struct Front {
    addr: SocketAddr,
    tls: bool,
    behaviour: Arc<Mutex<Behaviour>>,
    silent: Arc<AtomicUsize>,
    serving: JoinHandle<()>,
}

impl Front {
    pub(crate) async fn start(upstream: SocketAddr, tls: Option<TlsAcceptor>) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let behaviour = Arc::new(Mutex::new(Behaviour::Pass));
        let silent = Arc::new(AtomicUsize::new(0));
        let (shared, held) = (behaviour.clone(), silent.clone());
        let with_tls = tls.is_some();
        let serving = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let behaviour = *shared.lock().unwrap();
                if behaviour == Behaviour::Silent {
                    held.fetch_add(1, Ordering::SeqCst);
                }
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(socket, upstream, behaviour).await,
                        Some(acceptor) => {
                            // A client that refuses our certificate ends here.
                            if let Ok(stream) = acceptor.accept(socket).await {
                                serve(stream, upstream, behaviour).await;
                            }
                        }
                    }
                });
            }
        });
        Front {
            addr,
            tls: with_tls,
            behaviour,
            silent,
            serving,
        }
    }

    /// Connections accepted while [`Behaviour::Silent`]: held open, never answered.
    pub(crate) fn held_silent(&self) -> usize {
        self.silent.load(Ordering::SeqCst)
    }

    /// The origin to give the daemon as `hubs.base_url`.
    pub(crate) fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Applies to every connection accepted from now on.
    pub(crate) fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// Reads the request head (up to the blank line, 16 KB at most).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

async fn serve<S>(mut client: S, upstream: SocketAddr, behaviour: Behaviour)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = read_head(&mut client).await;
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let is_upgrade = text.contains("upgrade: websocket");
    let is_negotiate = text.starts_with("post ") && text.contains("/negotiate");
    let answer = |status: u16| {
        format!("HTTP/1.1 {status} Hostile\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    };
    let reply: Option<String> = match behaviour {
        Behaviour::Pass => None,
        Behaviour::Status(status) => Some(answer(status)),
        Behaviour::UpgradeStatus(status) if is_upgrade => Some(answer(status)),
        Behaviour::UpgradeStatus(_) => None,
        Behaviour::GarbageBody if is_negotiate => {
            let body = "<html>this is not the negotiate answer</html>";
            Some(format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ))
        }
        Behaviour::GarbageBody => None,
        Behaviour::NotHttp => Some("\u{1}\u{2}garbage, not HTTP\r\n\r\n".to_owned()),
        Behaviour::Silent => {
            // Keep the socket open and say nothing until the client gives up.
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink).await;
            return;
        }
    };
    match reply {
        Some(reply) => {
            let _ = client.write_all(reply.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        None => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            if server.write_all(&head).await.is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        }
    }
}
