//! The live reload (SIGHUP, `ctl reload`): the layered configuration is read again and
//! validated whole; `automation.*`, `risk.*` and `log.filter` apply at once (readers take the
//! new snapshot at their next use, no hub reconnects); a change to any other key is refused
//! whole with one log line naming the keys, and an invalid file keeps the old configuration.
//! Either refusal counts in `mesolive_config_reload_failures_total`.

use std::sync::Arc;

use crate::config::{ConfigError, Settings, applies_live, changed_keys};
use crate::ops::logging;
use crate::ops::metrics::Metrics;
use crate::store::{ActionKind, ActionSource};
use crate::supervisor::context::Ctx;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// These keys changed and apply now.
    Applied(Vec<String>),
    /// The configuration read is the one running.
    Unchanged,
}

/// Why a reload applied nothing (the running configuration stays whole).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration does not load or validate.
    #[error("reload: {0}; the running configuration is kept")]
    Invalid(#[source] ConfigError),
    /// Keys that only a restart can change.
    #[error(
        "reload refused: {} cannot change while the daemon runs (restart to apply); nothing was applied",
        .0.join(", ")
    )]
    Forbidden(Vec<String>),
}

/// Splits changed keys into those that apply live and those that need a restart.
pub fn split_changes(changed: Vec<String>) -> (Vec<String>, Vec<String>) {
    changed.into_iter().partition(|key| applies_live(key))
}

/// Reads the configuration again (the same `--config` file and the process environment) and
/// applies it if it may be applied whole.
pub async fn reload(ctx: &Ctx, source: ActionSource) -> Result<Reloaded, ReloadError> {
    let current = ctx.settings();
    let result = Settings::load(current.config_file.as_deref())
        .map_err(ReloadError::Invalid)
        .and_then(|new| {
            let (live, forbidden) = split_changes(changed_keys(&current, &new));
            if forbidden.is_empty() {
                Ok((new, live))
            } else {
                Err(ReloadError::Forbidden(forbidden))
            }
        });
    let (new, changed) = match result {
        Ok(checked) => checked,
        Err(err) => {
            Metrics::add(&ctx.metrics().config_reload_failures, 1);
            tracing::error!(source = source.as_str(), "{err}");
            return Err(err);
        }
    };
    if changed.is_empty() {
        tracing::info!(source = source.as_str(), "reload: configuration unchanged");
        return Ok(Reloaded::Unchanged);
    }
    for warning in &new.warnings {
        tracing::warn!("{warning}");
    }
    if changed.iter().any(|key| key == "log.filter")
        && let Err(reason) = logging::set_filter(&new.log.filter)
    {
        tracing::warn!(%reason, "reload: log.filter not applied");
    }
    ctx.replace_settings(Arc::new(new));
    Metrics::add(&ctx.metrics().config_reloads, 1);
    let keys = changed.join(", ");
    tracing::warn!(source = source.as_str(), keys = %keys, "configuration reloaded");
    if let Err(err) = ctx
        .store()
        .record_operator_action(ActionKind::Reload, &format!("applied: {keys}"), source)
        .await
    {
        tracing::error!(error = %err, "could not record the reload");
    }
    // New allow lists, modes or limits: the workflows look again.
    ctx.wake().workflows.notify_one();
    Ok(Reloaded::Applied(changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_split_into_live_keys_and_keys_that_need_a_restart() {
        let changed = vec![
            "automation.mode".to_owned(),
            "hubs.base_url".to_owned(),
            "log.filter".to_owned(),
            "ops.listen".to_owned(),
            "risk.max_orders_per_minute".to_owned(),
        ];
        let (live, forbidden) = split_changes(changed);
        assert_eq!(
            live,
            [
                "automation.mode",
                "log.filter",
                "risk.max_orders_per_minute"
            ]
        );
        assert_eq!(forbidden, ["hubs.base_url", "ops.listen"]);
    }

    #[test]
    fn the_refusal_names_every_key_in_one_line() {
        let err = ReloadError::Forbidden(vec!["hubs.base_url".into(), "database.path".into()]);
        let line = err.to_string();
        assert!(line.contains("hubs.base_url, database.path"), "{line}");
        assert!(!line.contains('\n'));
    }
}
