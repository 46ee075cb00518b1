//! A real PostgreSQL server for the tests: a cluster created in a temp dir (`initdb`, as the
//! `postgres` user when the tests run as root, since initdb refuses root), started on a free
//! loopback port with `pg_ctl`, and stopped when the last holder drops it. The binaries come
//! from `PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql`
//! package). A test that needs it is `#[ignore = "needs PostgreSQL: …"]` and runs in `.ci/run`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use mesolive_supervisor::store::{Location, PostgresLocation};
use testkit::TempDir;

/// Why a test is ignored in a plain `cargo test`.
pub(crate) const NEEDS_POSTGRES: &str = "needs PostgreSQL: apt-get install postgresql, then \
     cargo test --test it -- --ignored postgres";

/// One running cluster.
pub(crate) struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// Whoever runs the server's commands (`postgres` when the tests run as root).
    run_as: Option<&'static str>,
    _dir: TempDir,
}

/// The cluster the store tests share (each in its own schema); a new one once all dropped it.
static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

/// The shared cluster, started if none runs.
pub(crate) fn shared() -> Arc<Cluster> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(Cluster::start(true));
    *shared = Arc::downgrade(&cluster);
    cluster
}

/// A fresh schema name, unique within this test process.
pub(crate) fn fresh_schema() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t{}_{n}", std::process::id())
}

impl Cluster {
    /// A new cluster of its own (tests that stop and restart the server use one each).
    /// `fast`: no fsync (store tests); durable settings otherwise (benchmarks, failover).
    pub(crate) fn start(fast: bool) -> Cluster {
        let bin = binaries();
        let dir = testkit::temp_dir();
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        let run_as = root.then_some("postgres");
        if root {
            chown_to_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let port = free_port();
        let cluster = Cluster {
            bin,
            data,
            log,
            port,
            run_as,
            _dir: dir,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let mut conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 200\n",
            cluster._dir.path().display()
        );
        if fast {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let conf_path = cluster.data.join("postgresql.auto.conf");
        std::fs::write(&conf_path, conf).expect("write postgresql.auto.conf");
        if root {
            chown_to_postgres(&conf_path);
        }
        cluster.start_server();
        cluster
    }

    /// The URL of the `postgres` database as the `postgres` user (trust authentication).
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A location in a fresh schema of this cluster.
    pub(crate) fn fresh_location(&self) -> Location {
        Location::Postgres(PostgresLocation {
            url: self.url(),
            password: None,
            schema: fresh_schema(),
        })
    }

    /// Starts the server (after a [`Cluster::stop`]), waiting until it accepts connections.
    pub(crate) fn start_server(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &self.log.display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server at once (clients see their connections end).
    pub(crate) fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Restarts the server (fast shutdown, then start).
    pub(crate) fn restart(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "-l",
                &self.log.display().to_string(),
                "restart",
            ],
        );
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let output = match self.run_as {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        }
        .unwrap_or_else(|err| panic!("{NEEDS_POSTGRES}: cannot run {}: {err}", program.display()));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        output
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data.display().to_string();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = match self.run_as {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        };
    }
}

/// Where initdb and pg_ctl are: `PG_BIN`, else the newest Debian install.
fn binaries() -> PathBuf {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .max();
    match newest {
        Some(version) => root.join(version.to_string()).join("bin"),
        None => panic!(
            "{NEEDS_POSTGRES} (no {} found, PG_BIN unset)",
            root.display()
        ),
    }
}

/// Hands `path` (and what is under it) to the `postgres` user.
fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown postgres {}", path.display());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
