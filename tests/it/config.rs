//! Settings: layering, validation and the exit status of every bad-input class.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mesolive_supervisor::config::{AutomationMode, ConfigError, Settings, SynchronousMode};

use crate::support::daemon::BIN;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(file: Option<&Path>, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load_from(file, env(pairs))
}

fn write(dir: &testkit::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// Runs the binary's `state` command (it loads settings first) with a clean environment.
fn run_binary(args: &[&str], pairs: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(pairs.iter().copied())
        .output()
        .expect("spawn binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn defaults_are_safe() {
    let s = load(None, &[]).expect("defaults load");
    assert_eq!(s.automation.mode, AutomationMode::Observe);
    assert_eq!(s.database.synchronous, SynchronousMode::Full);
    assert_eq!(s.ops.listen.to_string(), "127.0.0.1:9187");
    assert_eq!(s.hubs.control_path, "/hubs/control/v1");
    assert_eq!(s.hubs.data_path, "/hubs/data/v1");
    assert_eq!(s.hubs.event_path, "/hubs/event/v1");
    assert!(s.api_key.is_none());
    let auto = &s.automation;
    assert!(
        auto.exit_retry && !auto.entry_retry,
        "exits retried, entries not"
    );
    assert_eq!(auto.exit_retry_max, None, "no limit while the signal holds");
    assert_eq!(auto.exit_retry_backoff, Duration::from_secs(15));
    assert_eq!(auto.exit_retry_backoff_max, Duration::from_secs(300));
    assert_eq!(auto.order_timeout, Duration::from_secs(120));
    assert_eq!(auto.job_timeout, Duration::from_secs(120));
}

#[test]
fn file_then_env_layering() {
    let dir = testkit::temp_dir();
    let file = write(
        &dir,
        "c.toml",
        "[automation]\nmode = \"paper\"\n[database]\npath = \"/tmp/x.db\"\n",
    );
    let s = load(Some(&file), &[("MESOLIVE__DATABASE__PATH", "/tmp/y.db")]).unwrap();
    assert_eq!(s.automation.mode, AutomationMode::Paper);
    assert_eq!(s.database.path, Path::new("/tmp/y.db"));
    let s = load(
        Some(&file),
        &[
            ("MESOLIVE__AUTOMATION__MODE", "live"),
            ("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "101, 102"),
            ("MESOLIVE__HUBS__SERVER_TIMEOUT", "45s"),
        ],
    )
    .unwrap();
    assert_eq!(s.automation.mode, AutomationMode::Live);
    assert_eq!(s.automation.allow_strategies, vec![101, 102]);
    assert_eq!(s.hubs.server_timeout.as_secs(), 45);
    let s = load(None, &[("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "7")]).unwrap();
    assert_eq!(s.automation.allow_strategies, vec![7]);
}

#[test]
fn per_strategy_overrides() {
    let dir = testkit::temp_dir();
    let file = write(
        &dir,
        "c.toml",
        "[automation.strategies.101]\nqty_multiplier = 3\nmax_open_positions = 2\n",
    );
    let s = load(
        Some(&file),
        &[(
            "MESOLIVE__AUTOMATION__STRATEGIES__102__QTY_MULTIPLIER",
            "0.5",
        )],
    )
    .unwrap();
    let auto = &s.automation;
    assert_eq!(auto.qty_multiplier_for(101).to_string(), "3");
    assert_eq!(auto.max_open_positions_for(101), 2);
    assert_eq!(auto.qty_multiplier_for(102).to_string(), "0.5");
    assert_eq!(auto.max_open_positions_for(102), 1);
    assert_eq!(auto.qty_multiplier_for(999).to_string(), "1");
    let bad = write(
        &dir,
        "bad.toml",
        "[automation.strategies.101]\nmax_open_positions = 0\n",
    );
    let err = load(Some(&bad), &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("automation.strategies.101.max_open_positions"),
        "{err}"
    );
}

#[test]
fn hub_urls_join_base_and_path() {
    let s = load(
        None,
        &[("MESOLIVE__HUBS__BASE_URL", "https://h.example/api/")],
    )
    .unwrap();
    let url = s.hubs.hub_url(&s.hubs.event_path).unwrap();
    assert_eq!(url.as_str(), "https://h.example/api/hubs/event/v1");
}

fn invalid_key(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn bad_values_name_their_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("MESOLIVE__HUBS__BASE_URL", "not a url", "hubs.base_url"),
        (
            "MESOLIVE__HUBS__BASE_URL",
            "ftp://h.example",
            "hubs.base_url",
        ),
        (
            "MESOLIVE__HUBS__EVENT_PATH",
            "hubs/event",
            "hubs.event_path",
        ),
        ("MESOLIVE__OPS__LISTEN", "localhost", "ops.listen"),
        (
            "MESOLIVE__HUBS__SERVER_TIMEOUT",
            "20s",
            "hubs.server_timeout",
        ),
        (
            "MESOLIVE__SUPERVISOR__BACKOFF_MAX",
            "1ms",
            "supervisor.backoff_max",
        ),
        (
            "MESOLIVE__SUPERVISOR__RESTART_MAX",
            "0",
            "supervisor.restart_max",
        ),
        ("MESOLIVE__LOG__FILTER", "info,[", "log.filter"),
        (
            "MESOLIVE__AUTOMATION__MODE",
            "live",
            "automation.allow_strategies",
        ),
        (
            "MESOLIVE__AUTOMATION__JOB_TIMEOUT",
            "0s",
            "automation.job_timeout",
        ),
        (
            "MESOLIVE__AUTOMATION__ORDER_TIMEOUT",
            "0s",
            "automation.order_timeout",
        ),
        (
            "MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF",
            "0s",
            "automation.exit_retry_backoff",
        ),
        (
            "MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF_MAX",
            "1s",
            "automation.exit_retry_backoff_max",
        ),
        (
            "MESOLIVE__AUTOMATION__EXIT_RETRY_MAX",
            "0",
            "automation.exit_retry_max",
        ),
    ];
    for (var, value, key) in cases {
        let err = load(None, &[(var, value)]).expect_err(var);
        assert_eq!(&invalid_key(err), key, "{var}={value}");
    }
}

#[test]
fn wrong_type_and_unknown_keys_are_load_errors() {
    let dir = testkit::temp_dir();
    for (text, needle) in [
        ("[supervisor]\nrestart_max = \"many\"\n", "restart_max"),
        ("[bogus]\nx = 1\n", "bogus"),
        ("[hubs]\nbase_urll = \"https://x\"\n", "base_urll"),
        ("[automation]\nmode = \"yolo\"\n", "yolo"),
        (
            "[hubs]\ninvocation_timeout = \"soon\"\n",
            "invocation_timeout",
        ),
        ("this is not toml", "c.toml"),
    ] {
        let file = write(&dir, "c.toml", text);
        match load(Some(&file), &[]) {
            Err(ConfigError::Load(msg)) => {
                assert!(msg.contains(needle), "{text:?} → {msg}");
                assert!(!msg.contains('\n'), "one line: {msg}");
            }
            other => panic!("{text:?}: expected a load error, got {other:?}"),
        }
    }
}

#[test]
fn api_key_from_env_or_file_and_redacted() {
    let secret = "sk-test-4f2a9c1e-never-log-me";
    let s = load(None, &[("MESOLIVE_API_KEY", secret)]).unwrap();
    assert_eq!(s.require_api_key().unwrap().expose(), secret);
    let debug = format!("{s:?}");
    assert!(!debug.contains(secret), "Debug leaks the key");
    assert!(debug.contains("<redacted>"));

    let dir = testkit::temp_dir();
    let key_file = write(&dir, "key", &format!("{secret}\n"));
    set_mode(&key_file, 0o600);
    let path = key_file.to_str().unwrap();
    let s = load(None, &[("MESOLIVE__HUBS__API_KEY_FILE", path)]).unwrap();
    assert_eq!(s.require_api_key().unwrap().expose(), secret);
    assert!(s.warnings.is_empty());

    set_mode(&key_file, 0o644);
    let s = load(None, &[("MESOLIVE__HUBS__API_KEY_FILE", path)]).unwrap();
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("readable by group or others"))
    );
    assert!(!s.warnings.iter().any(|w| w.contains(secret)));

    assert!(matches!(
        load(None, &[]).unwrap().require_api_key(),
        Err(ConfigError::MissingApiKey)
    ));
}

#[test]
fn unreadable_or_empty_key_file_is_an_error() {
    let dir = testkit::temp_dir();
    let missing = dir.path().join("absent");
    let err = load(
        None,
        &[("MESOLIVE__HUBS__API_KEY_FILE", missing.to_str().unwrap())],
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::KeyFile { .. }), "{err}");
    let empty = write(&dir, "empty", "\n");
    let err = load(
        None,
        &[("MESOLIVE__HUBS__API_KEY_FILE", empty.to_str().unwrap())],
    )
    .unwrap_err();
    assert!(err.to_string().contains("is empty"), "{err}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn binary_exits_78_with_one_line_naming_the_key() {
    let dir = testkit::temp_dir();
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec![("MESOLIVE__HUBS__BASE_URL", "nope")],
            "hubs.base_url",
        ),
        (vec![], vec![("MESOLIVE__BOGUS__X", "1")], "bogus"),
        (
            vec![],
            vec![("MESOLIVE__AUTOMATION__ORDER_TIMEOUT", "soon")],
            "order_timeout",
        ),
        (
            vec![],
            vec![("MESOLIVE__AUTOMATION__EXIT_RETRY_MAX", "0")],
            "automation.exit_retry_max",
        ),
        (
            vec![],
            vec![("MESOLIVE__SUPERVISOR__RESTART_MAX", "lots")],
            "restart_max",
        ),
        (
            vec![],
            vec![("MESOLIVE__HUBS__API_KEY_FILE", "/nonexistent/key")],
            "hubs.api_key_file",
        ),
        (
            vec![
                "--config".into(),
                dir.path().join("absent.toml").display().to_string(),
            ],
            vec![],
            "absent.toml",
        ),
    ];
    for (mut args, pairs, needle) in cases {
        args.push("state".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = run_binary(&args, &pairs);
        assert_eq!(code, 78, "{pairs:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(needle), "{needle} in {stderr}");
    }
}
