//! Wire profiles: the simulator playing each form the MesoLive API leaves open, chosen per
//! dimension, so the daemon is tested against readings it did not make itself. The forms are
//! written here from the API document (`docs/mesolive-api.md`, `docs/inferred.md`), never by
//! calling the daemon's encoders or decoders; only FACT model types are shared.
//!
//! The domain code stays as it is (PascalCase, names, text decimals); this layer sits where
//! values leave the simulator and where arguments arrive:
//!
//! * [`WireProfile::bind`] — a call's SignalR arguments → the args object the domain reads, or
//!   ASP.NET Core's binding error ([`binding`]);
//! * [`WireProfile::reply`] — an envelope → the profile's envelope, or a hub error ([`shapes`]);
//! * [`WireProfile::stream_item`], [`WireProfile::stream_refusal`], [`WireProfile::callback`] —
//!   Data Hub items and Event Hub callbacks, on-connect pushes included;
//! * [`values`] — the value forms every one of them goes through.
//!
//! Profiles (`sim --wire-profile SPEC`, `GET /wire` shows the forms in force):
//!
//! * `default` — what the simulator always did;
//! * `aspnet-strict` — a stock ASP.NET Core JSON hub protocol: camelCase out, any casing in,
//!   numbers only (strict binding), enums and flags as integers, decimals as numbers;
//! * `alt` — every dimension in its second form;
//! * `random:SEED` — every dimension drawn from its forms by the seed.
//!
//! A spec may go on with `,dimension=form` (pin a form) and `,!dimension=form` (keep a form
//! out of a random draw): `random:7,!enum_encoding=numeric,property_casing=camel`.

mod binding;
mod dimensions;
mod schema;
mod shapes;
mod values;

use serde::Serialize;
use serde_json::Value;

pub use dimensions::*;

/// What a hub method answers under a profile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// A Completion result.
    Value(Value),
    /// A Completion error (the method threw).
    Error(String),
}

/// The wire forms a simulator plays, and the spec they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct WireProfile {
    spec: String,
    seed: Option<u64>,
    forms: Forms,
}

impl Default for WireProfile {
    fn default() -> Self {
        WireProfile {
            spec: "default".into(),
            seed: None,
            forms: Forms::default(),
        }
    }
}

/// `GET /wire`.
#[derive(Debug, Clone, Serialize)]
pub struct WireReport {
    /// The spec the profile was built from.
    pub spec: String,
    /// The seed of a `random:SEED` profile.
    pub seed: Option<u64>,
    /// The form of every dimension.
    pub forms: std::collections::BTreeMap<&'static str, &'static str>,
    /// Every dimension and its forms, today's first.
    pub catalogue: std::collections::BTreeMap<&'static str, Vec<&'static str>>,
}

impl WireProfile {
    /// Parses a profile spec (see the module documentation).
    pub fn parse(spec: &str) -> Result<WireProfile, String> {
        let mut parts = spec.split(',').map(str::trim).filter(|p| !p.is_empty());
        let base = parts.next().unwrap_or("default");
        let (mut pins, mut excluded) = (Vec::new(), Vec::new());
        for part in parts {
            let (negated, pair) = match part.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, part),
            };
            let (dimension, form) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not dimension=form"))?;
            let mut probe = Forms::default();
            probe.set(dimension.trim(), form.trim())?;
            let entry = (dimension.trim().to_owned(), form.trim().to_owned());
            if negated {
                excluded.push(entry);
            } else {
                pins.push(entry);
            }
        }
        let (seed, mut forms) = match base {
            "default" => (None, Forms::default()),
            "aspnet-strict" => (None, aspnet_strict()),
            "alt" => (None, alternative()),
            other => {
                let seed = other
                    .strip_prefix("random:")
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| {
                        format!(
                            "unknown wire profile '{other}' (default, aspnet-strict, alt, random:SEED)"
                        )
                    })?;
                let mut rng = fastrand::Rng::with_seed(seed);
                let forms = Forms::draw(&mut rng, |dimension, form| {
                    excluded.iter().any(|(d, f)| d == dimension && f == form)
                });
                (Some(seed), forms)
            }
        };
        for (dimension, form) in &pins {
            forms.set(dimension, form)?;
        }
        Ok(WireProfile {
            spec: spec.trim().to_owned(),
            seed,
            forms,
        })
    }

    /// Today's forms, arguments bound like a stock ASP.NET Core server (`--strict-types`): what
    /// the tests that execute orders run against.
    pub fn strict_types() -> WireProfile {
        let mut profile = WireProfile::default();
        // A form of the catalogue: always accepted.
        let _ = profile.pin("argument_binding", "strict_stj");
        profile
    }

    /// The forms in force.
    pub fn forms(&self) -> &Forms {
        &self.forms
    }

    /// Pins one dimension (e.g. `--strict-types`).
    pub fn pin(&mut self, dimension: &str, form: &str) -> Result<(), String> {
        self.forms.set(dimension, form)?;
        self.spec = format!("{},{dimension}={form}", self.spec);
        Ok(())
    }

    /// `GET /wire`.
    pub fn report(&self) -> WireReport {
        WireReport {
            spec: self.spec.clone(),
            seed: self.seed,
            forms: self.forms.pairs().into_iter().collect(),
            catalogue: Forms::CATALOGUE
                .iter()
                .map(|(dimension, forms)| (*dimension, forms()))
                .collect(),
        }
    }

    /// One line for the start-up log: the spec and every form that is not today's.
    pub fn summary(&self) -> String {
        let today = Forms::default().pairs();
        let changed: Vec<String> = self
            .forms
            .pairs()
            .into_iter()
            .zip(today)
            .filter(|(mine, today)| mine != today)
            .map(|((dimension, form), _)| format!("{dimension}={form}"))
            .collect();
        if changed.is_empty() {
            format!("{} (today's forms)", self.spec)
        } else {
            format!("{}: {}", self.spec, changed.join(" "))
        }
    }

    /// Whether every outbound value goes out as the domain wrote it (the default profile's
    /// fast path: nothing to walk).
    fn outbound_unchanged(&self) -> bool {
        let inbound_only = Forms {
            auth_token_location: self.forms.auth_token_location,
            argument_arity: self.forms.argument_arity,
            argument_binding: self.forms.argument_binding,
            flags_encoding: self.forms.flags_encoding,
            page_args: self.forms.page_args,
            history_args: self.forms.history_args,
            underlying_data_args: self.forms.underlying_data_args,
            ..Forms::default()
        };
        self.forms == inbound_only
    }

    /// The args object a call binds to, or the Completion error of a call that does not bind.
    pub(crate) fn bind(&self, method: &str, arguments: Vec<Value>) -> Result<Value, String> {
        binding::bind(&self.forms, method, arguments)
    }

    /// What `method` answers, from the domain's envelope; `args` are the bound arguments.
    pub(crate) fn reply(&self, method: &str, args: &Value, envelope: Value) -> Answer {
        if self.outbound_unchanged() {
            return Answer::Value(envelope);
        }
        shapes::reply(&self.forms, method, args, envelope)
    }

    /// One Data Hub stream item.
    pub(crate) fn stream_item(&self, item: Value) -> Value {
        if self.outbound_unchanged() {
            return item;
        }
        shapes::stream_item(&self.forms, item)
    }

    /// The error a refused stream ends with.
    pub(crate) fn stream_refusal(&self, method: &str, text: String) -> String {
        shapes::stream_refusal(&self.forms, method, text)
    }

    /// A callback's target and arguments (live events and on-connect pushes).
    pub(crate) fn callback(&self, target: &str, payload: Value) -> (String, Vec<Value>) {
        if self.outbound_unchanged() {
            return (target.to_owned(), vec![payload]);
        }
        shapes::callback(&self.forms, target, payload)
    }
}

/// A stock ASP.NET Core JSON hub protocol (no `JsonStringEnumConverter`, default
/// `JsonSerializerOptions`): camelCase names out, case-insensitive in, numbers bound strictly,
/// enums and flags as integers, decimals as numbers, .NET's round-trip times.
fn aspnet_strict() -> Forms {
    Forms {
        argument_binding: ArgumentBinding::StrictStj,
        property_casing: PropertyCasing::Camel,
        status_code_spelling: StatusCodeSpelling::Numeric,
        enum_encoding: EnumEncoding::Numeric,
        flags_encoding: FlagsEncoding::NumericOnly,
        timestamp_format: TimestampFormat::UtcZTicks,
        decimal_inbound: DecimalInbound::Number,
        ..Forms::default()
    }
}

/// Every dimension in its second form (its first alternative to today's).
fn alternative() -> Forms {
    let mut forms = Forms::default();
    for (dimension, catalogue) in Forms::CATALOGUE {
        if let Some(form) = catalogue().get(1) {
            // The catalogue's own names always parse.
            let _ = forms.set(dimension, form);
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_pin() {
        assert_eq!(
            WireProfile::parse("default").unwrap(),
            WireProfile::default()
        );
        let strict = WireProfile::parse("aspnet-strict").unwrap();
        assert_eq!(strict.forms().argument_binding, ArgumentBinding::StrictStj);
        assert_eq!(strict.forms().property_casing, PropertyCasing::Camel);
        let pinned = WireProfile::parse("default,property_casing=camel").unwrap();
        assert_eq!(pinned.forms().property_casing, PropertyCasing::Camel);
        assert!(WireProfile::parse("default,property_casing=shouting").is_err());
        assert!(WireProfile::parse("default,no_such=thing").is_err());
        assert!(WireProfile::parse("fancy").is_err());
        assert!(WireProfile::parse("random:x").is_err());
        let alt = WireProfile::parse("alt").unwrap();
        assert!(
            alt.forms()
                .pairs()
                .iter()
                .zip(Forms::default().pairs())
                .all(|(a, d)| a != &d),
            "alt changes every dimension"
        );
    }

    #[test]
    fn random_profiles_replay_by_seed_and_honour_exclusions() {
        let a = WireProfile::parse("random:42").unwrap();
        assert_eq!(a, WireProfile::parse("random:42").unwrap());
        assert_eq!(a.report().seed, Some(42));
        let seeds_differ = (0..20)
            .map(|seed| WireProfile::parse(&format!("random:{seed}")).unwrap().forms)
            .collect::<Vec<_>>();
        assert!(seeds_differ.windows(2).any(|w| w[0] != w[1]));
        for seed in 0..50 {
            let profile = WireProfile::parse(&format!(
                "random:{seed},!enum_encoding=numeric,!enum_encoding=name_camel"
            ))
            .unwrap();
            assert_eq!(profile.forms().enum_encoding, EnumEncoding::NamePascal);
        }
    }

    #[test]
    fn the_report_lists_every_dimension() {
        let report = WireProfile::default().report();
        assert_eq!(report.forms.len(), report.catalogue.len());
        assert!(report.catalogue.values().all(|forms| forms.len() >= 2));
        assert_eq!(WireProfile::default().summary(), "default (today's forms)");
    }
}
