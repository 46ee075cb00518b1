//! Simulator capacity, measured against the `sim` binary as its own process with the project's
//! client as the peer:
//!
//! * `event_burst/50000`: `POST /events/emit {"count":50000}` until one subscribed Event Hub
//!   client has received every callback (criterion; throughput in events/s).
//! * `streams_1000_positions` (only under `cargo bench`): 1,000 open positions each streaming
//!   `StreamPositionData` at 2 updates/s for 20 s; prints the simulator's CPU (% of one core),
//!   RSS and the update rate the client saw.
//!
//! `cargo bench --bench sim` runs both; `cargo bench --bench sim -- event_burst` one.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use futures_util::StreamExt;
use mesolive_api::wire::{self, args, paging};
use serde_json::{Value, json};
use signalr::{CallbackReceiver, ConnectOptions, Connection};
use tokio::runtime::Runtime;
use url::Url;

const BIN: &str = env!("CARGO_BIN_EXE_mesolive-supervisor");
const BURST: u64 = 50_000;
const POSITIONS: usize = 1_000;
const STREAM_CONNECTIONS: usize = 10;
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);

/// The simulator as a child process; killed on drop.
struct SimProcess {
    child: Child,
    hubs: String,
    admin: String,
}

impl SimProcess {
    fn start(extra: &[&str]) -> SimProcess {
        let mut child = Command::new(BIN)
            .args(["sim", "--port", "0", "--admin-port", "0"])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn,mesolive_sim::cli=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the sim binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let (found, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("admin=") {
                    let _ = found.send(line);
                }
            }
        });
        let line = listening
            .recv_timeout(Duration::from_secs(60))
            .expect("the sim starts");
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(&format!("{name}=")))
                .expect("address in the listening line")
                .to_owned()
        };
        SimProcess {
            hubs: field("hubs"),
            admin: field("admin"),
            child,
        }
    }

    async fn connect(&self, path: &str) -> Connection {
        let url = Url::parse(&format!("{}{path}", self.hubs)).expect("hub URL");
        let mut options = ConnectOptions::new(url).with_access_token("sim-token");
        options.max_pending_callbacks = 10_000_000;
        options.invoke_timeout = Duration::from_secs(60);
        Connection::connect(options).await.expect("hub connects")
    }

    /// CPU seconds (user + system) the simulator used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("/proc stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after_name = stat.rsplit(')').next().unwrap_or_default();
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks(11) + ticks(12)) / per_second
    }

    /// Resident set size in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    http.post(url)
        .json(&body)
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON")
}

async fn burst(
    sim: &SimProcess,
    http: &reqwest::Client,
    callbacks: &mut CallbackReceiver,
) -> Duration {
    let started = Instant::now();
    post(
        http,
        format!("{}/events/emit", sim.admin),
        json!({"count": BURST}),
    )
    .await;
    for _ in 0..BURST {
        callbacks.recv().await.expect("the connection stays up");
    }
    started.elapsed()
}

fn event_burst(criterion: &mut Criterion, runtime: &Runtime) {
    let sim = SimProcess::start(&["--positions", "10"]);
    let http = reqwest::Client::new();
    let (events, mut callbacks) = runtime.block_on(async {
        let events = sim.connect("/hubs/event/v1").await;
        let callbacks = events.take_callbacks().expect("callbacks");
        events
            .invoke_raw(
                "SubscribeToStrategies",
                wire::call_args(args::strategies(None)),
            )
            .await
            .expect("subscribe");
        (events, callbacks)
    });
    let mut group = criterion.benchmark_group("event_burst");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .throughput(Throughput::Elements(BURST));
    group.bench_function(BenchmarkId::from_parameter(BURST), |bencher| {
        bencher.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    total += burst(&sim, &http, &mut callbacks).await;
                }
                total
            })
        });
    });
    group.finish();
    drop(events);
}

async fn open_positions(control: &Connection) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut token: Option<serde_json::Value> = None;
    loop {
        let raw = control
            .invoke_raw(
                "ListPositions",
                wire::call_args(args::open_positions(Some(1000), token.as_ref())),
            )
            .await
            .expect("ListPositions");
        let page =
            paging::read_page(wire::envelope::Envelope::from_result(raw).data).expect("a page");
        ids.extend(page.items.iter().filter_map(|p| p["Id"].as_i64()));
        match page.continuation {
            Some(next) => token = Some(next),
            None => return ids,
        }
    }
}

/// 1,000 positions streaming at 2 updates/s: the simulator's CPU and memory.
fn streams_1000_positions(runtime: &Runtime) {
    let positions = POSITIONS.to_string();
    let sim = SimProcess::start(&["--positions", &positions, "--stream-interval", "500ms"]);
    runtime.block_on(async {
        let control = sim.connect("/hubs/control/v1").await;
        let ids = open_positions(&control).await;
        assert_eq!(ids.len(), POSITIONS);
        let idle_rss = sim.rss_mib();
        let received = Arc::new(AtomicU64::new(0));
        let mut connections = Vec::new();
        for chunk in ids.chunks(POSITIONS / STREAM_CONNECTIONS) {
            let data = Arc::new(sim.connect("/hubs/data/v1").await);
            for id in chunk {
                let mut stream = data
                    .stream::<Value>("StreamPositionData", vec![args::position_data(*id)])
                    .expect("stream starts");
                let received = Arc::clone(&received);
                tokio::spawn(async move {
                    while let Some(Ok(_)) = stream.next().await {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            connections.push(data);
        }
        tokio::time::sleep(WARM_UP).await;
        let (cpu0, items0, t0) = (sim.cpu_seconds(), received.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(WINDOW).await;
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = (sim.cpu_seconds() - cpu0) / elapsed * 100.0;
        let rate = (received.load(Ordering::Relaxed) - items0) as f64 / elapsed;
        println!("streams_1000_positions: {POSITIONS} positions × StreamPositionData at 2 updates/s, {STREAM_CONNECTIONS} connections, {WINDOW:?} window");
        println!("  updates received   {rate:.0}/s (target {})", POSITIONS * 2);
        println!("  simulator CPU      {cpu:.1}% of one core");
        println!("  simulator RSS      {:.1} MiB streaming ({idle_rss:.1} MiB before the streams)", sim.rss_mib());
        drop(connections);
    });
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut criterion = Criterion::default().configure_from_args();
    event_burst(&mut criterion, &runtime);
    criterion.final_summary();
    let benching = std::env::args().any(|arg| arg == "--bench");
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = filters.is_empty()
        || filters
            .iter()
            .any(|f| "streams_1000_positions".contains(f.as_str()));
    if benching && wanted {
        streams_1000_positions(&runtime);
    }
}
