//! Instants as stored: unix milliseconds (UTC) in INTEGER columns, which compare and index
//! cheaply (dedupe pruning by age) and never depend on a text format.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// A UTC instant with millisecond precision, as the state store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Milliseconds since the unix epoch, for callers that compute ages.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// The instant `age` before this one (saturating, so a huge age never wraps around).
    pub fn minus(self, age: Duration) -> Self {
        let millis = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// The instant `delay` after this one (saturating).
    pub fn plus(self, delay: Duration) -> Self {
        let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// As a chrono time; `None` only for values outside chrono's range (a damaged row).
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(time: DateTime<Utc>) -> Self {
        Self(time.timestamp_millis())
    }
}

/// RFC 3339 with milliseconds, e.g. `2025-01-02T03:04:05.678Z`; raw millis if out of range.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(time) => f.write_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => write!(f, "{}ms", self.0),
        }
    }
}

/// Serialized as its RFC 3339 text so `state --json` is readable without conversion.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
