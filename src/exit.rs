//! Process exit statuses, from sysexits(3) so service managers and scripts can tell failures
//! apart. The README lists them; tests assert them.

/// Clean stop (SIGTERM, `--duration` elapsed, a check passed).
pub const OK: u8 = 0;
/// A runtime failure: a check failed, the restart intensity was exceeded, a fatal hub error.
pub const FAILURE: u8 = 1;
/// The state database cannot be opened, read or written (corrupt, newer schema, unwritable).
pub const IO_ERROR: u8 = 74;
/// The server no longer has the event history after the persisted cursor and
/// `events.on_history_gap = "stop"` (EX_NOINPUT: the input needed is gone).
pub const NO_INPUT: u8 = 66;
/// No daemon answers on the control socket (`ctl status`, `ctl reload`, `ctl cancel-workflow`).
pub const UNAVAILABLE: u8 = 69;
/// Another daemon already holds the state database.
pub const TEMP_FAIL: u8 = 75;
/// The server's event sequence is behind the persisted cursor (its history restarted, or the
/// database belongs to another account or server): stopping beats skipping its events.
pub const PROTOCOL: u8 = 76;
/// MesoLive rejected the credentials (HTTP 401/403); retrying would not help.
pub const NO_PERMISSION: u8 = 77;
/// A setting is invalid (EX_CONFIG); the message names the key.
pub const CONFIG: u8 = 78;
