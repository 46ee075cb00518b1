//! The restart policy, kept in the supervisor and nowhere else: exponential backoff with jitter
//! between attempts (backon), and a restart-intensity limit per child.

use std::collections::VecDeque;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use crate::config::SupervisorSettings;

/// Delays between attempts: initial, ×multiplier, capped, jittered; never runs out.
pub fn backoff(settings: &SupervisorSettings) -> impl Iterator<Item = Duration> + Send + use<> {
    backoff_between(
        settings.backoff_initial,
        settings.backoff_max,
        settings.backoff_multiplier,
        settings.backoff_jitter,
    )
}

/// [`backoff`] with its parameters given (the notification senders' own backoff).
pub fn backoff_between(
    initial: Duration,
    max: Duration,
    multiplier: f32,
    jitter: bool,
) -> impl Iterator<Item = Duration> + Send + use<> {
    let builder = ExponentialBuilder::default()
        .with_min_delay(initial)
        .with_max_delay(max)
        .with_factor(multiplier)
        .without_max_times();
    if jitter {
        builder.with_jitter().build()
    } else {
        builder.build()
    }
}

/// A child restarted more often than the configured intensity allows.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{child} restarted {restarts} times within {window:?} (limit {max}); giving up so the service manager can restart the daemon"
)]
pub struct IntensityExceeded {
    /// The child's name.
    pub child: String,
    /// Restarts seen in the window.
    pub restarts: usize,
    /// The configured limit.
    pub max: u32,
    /// The configured window.
    pub window: Duration,
}

/// Sliding-window restart counter for one child (OTP's "restart intensity").
#[derive(Debug)]
pub struct Intensity {
    child: String,
    max: u32,
    window: Duration,
    restarts: VecDeque<Instant>,
}

impl Intensity {
    /// A counter for `child` with the configured limit.
    pub fn new(child: impl Into<String>, settings: &SupervisorSettings) -> Self {
        Intensity {
            child: child.into(),
            max: settings.restart_max,
            window: settings.restart_window,
            restarts: VecDeque::new(),
        }
    }

    /// Records one restart now; errs when the window holds more than `max` restarts.
    pub fn record(&mut self) -> Result<(), IntensityExceeded> {
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        if self.restarts.len() > self.max as usize {
            return Err(IntensityExceeded {
                child: self.child.clone(),
                restarts: self.restarts.len(),
                max: self.max,
                window: self.window,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings() -> SupervisorSettings {
        let mut s = Settings::load_from(None, Default::default())
            .map(|s| s.supervisor)
            .unwrap_or_else(|e| panic!("{e}"));
        s.backoff_jitter = false;
        s.restart_max = 3;
        s
    }

    #[test]
    fn backoff_grows_and_caps() {
        let s = settings();
        let delays: Vec<Duration> = backoff(&s).take(12).collect();
        assert_eq!(delays[0], s.backoff_initial);
        assert_eq!(delays[1], s.backoff_initial * 2);
        assert_eq!(*delays.last().unwrap(), s.backoff_max);
    }

    #[tokio::test(start_paused = true)]
    async fn intensity_window_slides() {
        let s = settings();
        let mut i = Intensity::new("pump", &s);
        for _ in 0..3 {
            i.record().unwrap();
        }
        assert!(i.record().is_err());
        tokio::time::advance(s.restart_window + Duration::from_secs(1)).await;
        assert!(i.record().is_ok());
    }
}
