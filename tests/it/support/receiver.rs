//! A notification receiver on a real socket (127.0.0.1, an ephemeral port): it records every
//! attempt of every sink format, answers as the test scripts it (a status, or an answer later
//! than the daemon's timeout), and can go away (connections refused) and come back on the same
//! port.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How the receiver answers one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// This HTTP status at once.
    Status(u16),
    /// 200, but only after this long (longer than the daemon's `notify.timeout`: a timeout).
    Late(Duration),
}

/// One attempt as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// The request path.
    pub path: String,
    /// The body as sent (what the signature covers).
    pub raw: Vec<u8>,
    /// The body as JSON (`Null` if it was not JSON).
    pub body: Value,
    /// `X-Mesolive-Signature`, if sent.
    pub signature: Option<String>,
    /// What the daemon was answered (`None`: the answer came after its timeout).
    pub answered: Option<u16>,
}

impl Attempt {
    /// Whether the daemon was told 2xx in time.
    pub(crate) fn accepted(&self) -> bool {
        self.answered
            .is_some_and(|status| (200..300).contains(&status))
    }

    /// The notification's `kind` (webhook format).
    pub(crate) fn kind(&self) -> &str {
        self.body["kind"].as_str().unwrap_or_default()
    }

    /// The notification's `id` (webhook format).
    pub(crate) fn id(&self) -> &str {
        self.body["id"].as_str().unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Answer>>,
    otherwise: Mutex<Option<Answer>>,
    attempts: Mutex<Vec<Attempt>>,
}

impl Shared {
    fn next_answer(&self) -> Answer {
        let scripted = lock(&self.script).pop_front();
        scripted
            .or(*lock(&self.otherwise))
            .unwrap_or(Answer::Status(200))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The receiver. Dropping it stops it.
pub(crate) struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    serving: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Receiver {
    /// Listens on 127.0.0.1, any free port; answers 200 until told otherwise.
    pub(crate) async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("receiver binds");
        let addr = listener.local_addr().expect("receiver address");
        let mut receiver = Receiver {
            addr,
            shared: Arc::default(),
            serving: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: TcpListener) {
        let router = Router::new()
            .fallback(record)
            .with_state(self.shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.serving = Some((stop, task));
    }

    /// `http://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next attempts get these answers, in order (then the default one).
    pub(crate) fn script(&self, answers: &[Answer]) {
        lock(&self.shared.script).extend(answers.iter().copied());
    }

    /// What every attempt gets once the script is used up (200 unless set).
    pub(crate) fn otherwise(&self, answer: Answer) {
        *lock(&self.shared.otherwise) = Some(answer);
    }

    /// Every attempt so far, in arrival order.
    pub(crate) fn attempts(&self) -> Vec<Attempt> {
        lock(&self.shared.attempts).clone()
    }

    /// The attempts answered 2xx in time, in arrival order.
    pub(crate) fn accepted(&self) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(Attempt::accepted)
            .collect()
    }

    /// The accepted attempts once per notification id, in the order first accepted: delivery is
    /// at least once under a stable id (a leader paused or killed between a sink's answer and
    /// recording it delivers again), so this is what a sink that dedupes by id was told.
    pub(crate) fn accepted_once(&self) -> Vec<Attempt> {
        let mut seen = HashSet::new();
        self.accepted()
            .into_iter()
            .filter(|attempt| seen.insert(attempt.id().to_owned()))
            .collect()
    }

    /// Stops listening: connections are refused until [`Receiver::restart`].
    pub(crate) async fn stop(&mut self) {
        if let Some((stop, task)) = self.serving.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Listens again on the same port.
    pub(crate) async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("the receiver's port is free again");
        self.serve(listener);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some((_, task)) = self.serving.take() {
            task.abort();
        }
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answer = shared.next_answer();
    let mut attempt = Attempt {
        path: uri.path().to_owned(),
        raw: body.to_vec(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signature: headers
            .get("x-mesolive-signature")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        answered: None,
    };
    let status = match answer {
        Answer::Status(status) => {
            attempt.answered = Some(status);
            status
        }
        Answer::Late(_) => 200,
    };
    lock(&shared.attempts).push(attempt);
    if let Answer::Late(delay) = answer {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Whether `signature` (`sha256=<hex>`) is HMAC-SHA256 of `body` under `secret`.
pub(crate) fn signed_by(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex) = signature.and_then(|s| s.strip_prefix("sha256=")) else {
        return false;
    };
    if hex.len() != 64 {
        return false;
    }
    let Ok(tag) = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, body, &tag).is_ok()
}
