//! `mesolive-supervisor check …`: the runbook's health checks (the ones users know from the
//! MesoLive SDK examples), in runbook order, against the configured hubs; and `check probe`,
//! which prints the raw answers behind every INFERRED wire detail so a user with a key can
//! confirm or correct `hubs/wire.rs` in one run.

use std::fmt::Write as _;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::supervisor::links::Connector;
use crate::table::columns;
use mesolive_api::Hub;
use mesolive_api::client::{ControlHub, DataHub, EventHub, HubClient, HubError};
use mesolive_api::models::StatusCode;
use mesolive_api::wire::encode::{DecimalForm, Outbound};
use mesolive_api::wire::{self, Casing, args, field, methods};
use signalr::SignalrError;

/// Which check to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Control Hub: connected providers/agents.
    Agents,
    /// Control Hub: accounts (first `limit`).
    Accounts {
        /// Most rows listed.
        limit: u32,
    },
    /// Control Hub: strategies (first `limit`).
    Strategies {
        /// Most rows listed.
        limit: u32,
    },
    /// Data Hub: an underlying stream yields items.
    Data {
        /// The symbol.
        symbol: String,
        /// The data provider; `None`: `hubs.probe_provider`, else that of a connected agent.
        provider: Option<String>,
        /// How long to listen.
        seconds: u64,
    },
    /// Event Hub: subscribe to all strategies and count callbacks.
    Events {
        /// How long to listen.
        seconds: u64,
    },
    /// All of the above, in runbook order.
    All {
        /// Symbol for the data check.
        symbol: String,
        /// Seconds for the data and event checks.
        seconds: u64,
        /// Rows listed for accounts and strategies.
        limit: u32,
    },
    /// The verification sequence of API §8.3, raw JSON and a verdict per INFERRED detail.
    Probe,
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Check name.
    pub check: String,
    /// Passed?
    pub ok: bool,
    /// One-line summary (the reason, on failure).
    pub summary: String,
    /// Column names of `rows`.
    pub columns: Vec<String>,
    /// Table rows.
    pub rows: Vec<Vec<String>>,
}

impl CheckReport {
    fn new(check: &str, ok: bool, summary: String) -> Self {
        CheckReport {
            check: check.to_owned(),
            ok,
            summary,
            columns: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn table(mut self, columns: &[&str], rows: Vec<Vec<String>>) -> Self {
        self.columns = columns.iter().map(|c| (*c).to_owned()).collect();
        self.rows = rows;
        self
    }
}

/// Runs `check` and returns its reports (several for `all` and `probe`).
pub async fn run(settings: &Settings, check: &Check) -> Vec<CheckReport> {
    let connector = match signalr::tls::client_config(&settings.hubs.extra_ca_file) {
        Ok(tls) => Connector::new(settings, Some(tls)),
        Err(err) => return vec![CheckReport::new("tls", false, err.to_string())],
    };
    let configured = Some(settings.hubs.probe_provider.clone()).filter(|p| !p.is_empty());
    match check {
        Check::Agents => vec![agents(&connector).await],
        Check::Accounts { limit } => vec![accounts(&connector, *limit).await],
        Check::Strategies { limit } => vec![strategies(&connector, *limit).await],
        Check::Data {
            symbol,
            provider,
            seconds,
        } => {
            let provider = provider.clone().filter(|p| !p.is_empty()).or(configured);
            vec![data(&connector, symbol, provider, *seconds).await]
        }
        Check::Events { seconds } => vec![events(&connector, *seconds).await],
        Check::All {
            symbol,
            seconds,
            limit,
        } => {
            let mut reports = vec![
                agents(&connector).await,
                accounts(&connector, *limit).await,
                strategies(&connector, *limit).await,
            ];
            reports.push(data(&connector, symbol, configured, *seconds).await);
            reports.push(events(&connector, *seconds).await);
            reports
        }
        Check::Probe => probe(&connector, settings.hubs.wire.outbound()).await,
    }
}

/// Renders reports as aligned tables, one section per check.
pub fn render_table(reports: &[CheckReport]) -> String {
    let mut out = String::new();
    for report in reports {
        let mark = if report.ok { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "{mark} {:<11} {}", report.check, report.summary);
        if !report.columns.is_empty() {
            let headers: Vec<&str> = report.columns.iter().map(String::as_str).collect();
            out.push_str(&columns(&headers, report.rows.clone()));
        }
    }
    out
}

async fn control(connector: &Connector) -> Result<ControlHub, CheckReport> {
    connect(connector, Hub::Control).await.map(ControlHub)
}

async fn connect(connector: &Connector, hub: Hub) -> Result<HubClient, CheckReport> {
    match connector.client(hub).await {
        Ok(client) => Ok(client),
        Err(err) => {
            let reason = match &err {
                SignalrError::Unauthorized { .. } => format!("credentials refused: {err}"),
                _ => format!("cannot connect to the {} hub: {err}", hub.as_str()),
            };
            Err(CheckReport::new(hub.as_str(), false, reason))
        }
    }
}

fn failed(check: &str, err: HubError) -> CheckReport {
    CheckReport::new(check, false, err.to_string())
}

async fn agents(connector: &Connector) -> CheckReport {
    let control = match control(connector).await {
        Ok(control) => control,
        Err(report) => return report,
    };
    match control.list_agents_raw().await {
        Ok(agents) if agents.is_empty() => {
            CheckReport::new("agents", false, "no agent or connector is connected".into())
        }
        Ok(agents) => {
            let (headers, rows) = agent_table(&agents);
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let picked = match wire::agents::pick_provider(&agents) {
                Some(provider) => format!("; data provider of a connected agent: {provider}"),
                None => "; no connected agent names a data provider".to_owned(),
            };
            CheckReport::new("agents", true, format!("{} agent(s){picked}", agents.len()))
                .table(&headers, rows)
        }
        Err(err) => failed("agents", err),
    }
}

/// Every field the agents carry, as the server named them (the model was not recovered, so
/// nothing is left out and no column is blank for all of them): the INFERRED names first, then
/// the others by name. An entry that is not an object is shown raw.
fn agent_table(agents: &[Value]) -> (Vec<String>, Vec<Vec<String>>) {
    const INFERRED: [&str; 4] = ["Name", "Connector", "Connected", "LastSnapshotTime"];
    let mut headers: Vec<String> = Vec::new();
    for name in INFERRED {
        if let Some(key) = agents
            .iter()
            .filter_map(Value::as_object)
            .find_map(|object| wire::field_key(object, &[name]))
        {
            headers.push(key.clone());
        }
    }
    for object in agents.iter().filter_map(Value::as_object) {
        for key in object.keys() {
            if !headers.iter().any(|h| h.eq_ignore_ascii_case(key)) {
                headers.push(key.clone());
            }
        }
    }
    let raw_column = agents.iter().any(|agent| !agent.is_object());
    let rows = agents
        .iter()
        .map(|agent| {
            let mut row: Vec<String> = headers
                .iter()
                .map(|header| {
                    agent
                        .as_object()
                        .and_then(|object| wire::field(object, &[header]))
                        .map(|value| match value {
                            Value::String(text) => text.clone(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        })
                        .unwrap_or_default()
                })
                .collect();
            if raw_column {
                row.push(if agent.is_object() {
                    String::new()
                } else {
                    agent.to_string()
                });
            }
            row
        })
        .collect();
    let mut headers: Vec<String> = headers.iter().map(|h| h.to_ascii_uppercase()).collect();
    if raw_column {
        headers.push("RAW".into());
    }
    (headers, rows)
}

async fn accounts(connector: &Connector, limit: u32) -> CheckReport {
    let control = match control(connector).await {
        Ok(control) => control,
        Err(report) => return report,
    };
    match control.list_accounts(limit).await {
        Ok(accounts) => {
            let rows = accounts
                .iter()
                .take(limit as usize)
                .map(|a| {
                    vec![
                        a.broker_account_id.clone(),
                        if a.is_paper_account {
                            "paper"
                        } else {
                            "broker"
                        }
                        .to_owned(),
                        a.currency.clone().unwrap_or_default(),
                        a.active_positions
                            .map(|n| n.to_string())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            CheckReport::new("accounts", true, format!("{} account(s)", accounts.len()))
                .table(&["ACCOUNT", "KIND", "CURRENCY", "OPEN POSITIONS"], rows)
        }
        Err(err) => failed("accounts", err),
    }
}

async fn strategies(connector: &Connector, limit: u32) -> CheckReport {
    let control = match control(connector).await {
        Ok(control) => control,
        Err(report) => return report,
    };
    match control.list_strategies(limit).await {
        Ok(strategies) => {
            let rows = strategies
                .iter()
                .take(limit as usize)
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.name.clone().unwrap_or_default(),
                        s.symbol.clone().unwrap_or_default(),
                        s.active_on_accounts.clone().unwrap_or_default().join(","),
                    ]
                })
                .collect();
            CheckReport::new(
                "strategies",
                true,
                format!("{} strategy(ies)", strategies.len()),
            )
            .table(&["ID", "NAME", "SYMBOL", "ACTIVE ON"], rows)
        }
        Err(err) => failed("strategies", err),
    }
}

/// What `check data` says when it has no provider to ask with: the server refuses underlying
/// data without one (API §3.2.1), so the check does not send the call, and names the setting.
const NO_PROVIDER: &str = "no data provider: hubs.probe_provider is empty and no connected agent \
     names one, and MesoLive requires a data provider for underlying data (API §3.2.1): set \
     hubs.probe_provider (MESOLIVE__HUBS__PROBE_PROVIDER) or pass --provider, naming a provider \
     your agents serve (check agents lists them)";

async fn data(
    connector: &Connector,
    symbol: &str,
    provider: Option<String>,
    seconds: u64,
) -> CheckReport {
    let (provider, source) = match provider {
        Some(provider) => (Some(provider), "given"),
        None => match control(connector).await {
            Ok(control) => match control.list_agents_raw().await {
                Ok(agents) => (
                    wire::agents::pick_provider(&agents),
                    "of a connected agent (ListAgents)",
                ),
                Err(err) => return failed("data", err),
            },
            Err(report) => return report,
        },
    };
    let Some(provider) = provider else {
        return CheckReport::new("data", false, NO_PROVIDER.into());
    };
    let using = format!("provider {provider} ({source})");
    let data = match connect(connector, Hub::Data).await {
        Ok(client) => DataHub(client),
        Err(report) => return report,
    };
    let mut stream = match data.stream_underlying(symbol, Some(&provider)) {
        Ok(stream) => stream,
        Err(err) => return failed("data", err),
    };
    let mut items = 0u64;
    let mut last = String::new();
    let listen = tokio::time::sleep(Duration::from_secs(seconds));
    tokio::pin!(listen);
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(value)) => {
                    items += 1;
                    last = value.to_string();
                }
                Some(Err(err)) => return CheckReport::new("data", false, format!("{symbol} stream failed with {using}: {err}")),
                None => break,
            },
            _ = &mut listen => break,
        }
    }
    if items == 0 {
        return CheckReport::new(
            "data",
            false,
            format!("no {symbol} update within {seconds} s with {using}"),
        );
    }
    CheckReport::new(
        "data",
        true,
        format!("{items} {symbol} update(s) in {seconds} s with {using}"),
    )
    .table(&["LAST UPDATE"], vec![vec![last]])
}

async fn events(connector: &Connector, seconds: u64) -> CheckReport {
    let client = match connect(connector, Hub::Event).await {
        Ok(client) => client,
        Err(report) => return report,
    };
    let Some(mut callbacks) = client.connection().take_callbacks() else {
        return CheckReport::new("events", false, "callback queue unavailable".into());
    };
    let event = EventHub(client);
    let subscribed = match event.subscribe(None).await {
        Ok(result) => result,
        Err(err) => return failed("events", err),
    };
    let latest = match event.latest_seq_id().await {
        Ok(latest) => latest,
        Err(err) => return failed("events", err),
    };
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    let listen = tokio::time::sleep(Duration::from_secs(seconds));
    tokio::pin!(listen);
    loop {
        tokio::select! {
            callback = callbacks.recv() => match callback {
                Some(callback) => *seen.entry(callback.target).or_default() += 1,
                None => return CheckReport::new("events", false, "connection lost while listening".into()),
            },
            _ = &mut listen => break,
        }
    }
    let ok = subscribed.failed_strategies.is_empty();
    let summary = format!(
        "subscribed to {} strategy(ies){}, latest EventSeqId {latest}, {} callback(s) in {seconds} s",
        subscribed.successful_strategies.len(),
        if ok {
            String::new()
        } else {
            format!(", FAILED for {:?}", subscribed.failed_strategies)
        },
        seen.values().sum::<u64>()
    );
    let rows = seen
        .into_iter()
        .map(|(target, n)| vec![target, n.to_string()])
        .collect();
    CheckReport::new("events", ok, summary).table(&["CALLBACK", "COUNT"], rows)
}

/// API §8.3: one raw call per INFERRED detail, with the raw JSON and a verdict. Every
/// verdict names the wire form it saw (`docs/inferred.md`); a form the daemon refuses is a
/// FAIL that says so, in the words the daemon stops with.
async fn probe(connector: &Connector, outbound: Outbound) -> Vec<CheckReport> {
    let control = match control(connector).await {
        Ok(control) => control.0,
        Err(report) => return vec![report],
    };
    let event = match connect(connector, Hub::Event).await {
        Ok(client) => client,
        Err(report) => return vec![report],
    };
    let data = connect(connector, Hub::Data).await.ok();
    let mut reports = Vec::new();

    let latest = raw(&event, methods::GET_LATEST_EVENT_SEQ_ID, json!({})).await;
    reports.push(verdict("envelope", &latest, envelope_verdict(&latest)));
    reports.push(verdict("casing", &latest, casing_verdict(&latest)));
    let accounts = raw(&control, methods::LIST_ACCOUNTS, args::page(Some(5), None)).await;
    reports.push(verdict(
        "enums",
        &accounts,
        enum_verdict(&latest, &accounts),
    ));
    reports.push(verdict("paging", &accounts, page_verdict(&accounts)));
    for (method, call_args) in [
        (methods::LIST_AGENTS, json!({})),
        (methods::LIST_STRATEGIES, args::page(Some(5), None)),
        (methods::LIST_POSITIONS, json!({})),
    ] {
        let answer = raw(&control, method, call_args).await;
        let summary = answer_status(&answer);
        reports.push(verdict(method, &answer, summary));
    }
    let newest = latest
        .as_ref()
        .ok()
        .map(|v| wire::envelope::Envelope::from_result(v.clone()).data)
        .and_then(|d| field(d.as_object()?, &["LatestEventSeqId"]).and_then(wire::int))
        .unwrap_or(0);
    let after = (newest - 2).max(0);
    let history = raw(
        &event,
        methods::GET_EVENTS_SINCE,
        args::events_since(after, 2, None),
    )
    .await;
    reports.push(verdict(
        "history args",
        &history,
        history_verdict(&history, after),
    ));
    let key = format!("probe-{:016x}", fastrand::u64(..));
    let record = raw(
        &control,
        methods::GET_IDEMPOTENCY_RECORD,
        args::idempotency_record(&key),
    )
    .await;
    reports.push(verdict("not found", &record, not_found_verdict(&record)));
    if let Some(data) = data {
        reports.push(flags(&control, &data).await);
    }
    reports.push(CheckReport::new(
        "decimals",
        true,
        format!(
            "no harmless call takes a Decimal (API §3), so the first order shows how the server binds them; sent as {} (hubs.wire.decimal; a number binds on a stock ASP.NET Core server)",
            match outbound.decimal {
                DecimalForm::Number => "exact JSON numbers",
                DecimalForm::String => "JSON strings",
            }
        ),
    ));
    reports
}

/// The flags forms, on a harmless snapshot: `"All"`, a list of names, and (when both are
/// refused) whether the call binds without flags at all.
async fn flags(control: &HubClient, data: &HubClient) -> CheckReport {
    let Some(position) = first_position_id(control).await else {
        return CheckReport::new(
            "flags",
            false,
            "no open position to take a snapshot of; flags unconfirmed".into(),
        );
    };
    let all = args::position_data(position);
    let mut listed = all.clone();
    for (name, value) in listed.as_object_mut().into_iter().flatten() {
        if args::FLAGS.contains(&name.as_str()) {
            *value = if name.starts_with("Include") {
                json!("Prices, Greeks, PnL")
            } else {
                json!("Bid, Ask, Last, Mark")
            };
        }
    }
    let method = methods::GET_POSITION_SNAPSHOT;
    let by_name = raw(data, method, all.clone()).await;
    let by_list = raw(data, method, listed).await;
    let refused = |answer: &Result<Value, String>| matches!(answer, Err(text) if text.contains("Error binding arguments"));
    let (ok, summary) = match (refused(&by_name), refused(&by_list)) {
        (false, false) => (
            true,
            format!(
                "\"All\" answers {}; a name list answers {} (flags_encoding=all_name or name_list)",
                answer_status(&by_name).1,
                answer_status(&by_list).1
            ),
        ),
        (true, false) => (
            true,
            "\"All\" is refused but a name list binds: the daemon sends \"All\" (flags_encoding: correct args::ALL_BLOCKS)".into(),
        ),
        _ => match DataHub(data.clone()).flags_refused(method, all).await {
            Some(unsupported) => (false, unsupported.to_string()),
            None => (
                false,
                "the snapshot's arguments are refused, and not because of the flags".into(),
            ),
        },
    };
    let raw_text = format!(
        "\"All\": {} | list: {}",
        raw_answer(&by_name),
        raw_answer(&by_list)
    );
    CheckReport::new("flags", ok, summary).table(&["RAW"], vec![vec![raw_text]])
}

/// One call, its answer as received; the arguments in the casing the server answers in (it
/// may bind no other), learned from the probe's first answer.
async fn raw(client: &HubClient, method: &str, call_args: Value) -> Result<Value, String> {
    let casing = client.casing();
    let answer = client
        .connection()
        .invoke_raw(method, wire::call_args(casing.args(call_args)))
        .await
        .map_err(|err| err.to_string());
    if let Ok(result) = &answer {
        client.observe(result);
    }
    answer
}

fn raw_answer(answer: &Result<Value, String>) -> String {
    match answer {
        Ok(value) => value.to_string(),
        Err(err) => format!("error: {err}"),
    }
}

fn verdict(
    check: &str,
    answer: &Result<Value, String>,
    (ok, summary): (bool, String),
) -> CheckReport {
    CheckReport::new(check, ok, summary).table(&["RAW"], vec![vec![raw_answer(answer)]])
}

fn answer_status(answer: &Result<Value, String>) -> (bool, String) {
    match answer {
        Ok(value) => {
            if let Some(unsupported) = wire::envelope::unsupported(value) {
                return (false, unsupported.to_string());
            }
            let envelope = wire::envelope::Envelope::from_result(value.clone());
            (
                envelope.status == StatusCode::Success,
                format!("status {}", envelope.status),
            )
        }
        Err(err) if err.contains("argument(s) but target expects 0") => (
            true,
            format!(
                "argument_arity=zero_args: the method takes no argument (the daemon then sends none): {err}"
            ),
        ),
        Err(err) => (false, err.clone()),
    }
}

fn envelope_verdict(answer: &Result<Value, String>) -> (bool, String) {
    let Ok(Value::Object(object)) = answer else {
        return (
            false,
            "no object result: the envelope reading in wire.rs is unconfirmed".into(),
        );
    };
    let names: Vec<&String> = object.keys().collect();
    let text = format!("fields {names:?}");
    if let Some(unsupported) = answer.as_ref().ok().and_then(wire::envelope::unsupported) {
        return (false, format!("{text}: {unsupported}"));
    }
    let payload = wire::envelope::Envelope::from_result(Value::Object(object.clone())).data;
    match (field(object, &["Status"]).is_some(), payload.is_null()) {
        (true, false) => (
            true,
            format!(
                "{text}: a status and a payload (envelope_data_field read as {:?})",
                data_name(object)
            ),
        ),
        (true, true) => (
            false,
            format!("{text}: a status but no payload the daemon can find — correct wire::envelope"),
        ),
        (false, _) => (false, format!("{text}: no Status — correct wire::envelope")),
    }
}

/// The name the envelope's payload goes under.
fn data_name(object: &serde_json::Map<String, Value>) -> String {
    object
        .keys()
        .find(|key| {
            !["status", "statuscode", "message", "error"]
                .contains(&key.to_ascii_lowercase().as_str())
        })
        .cloned()
        .unwrap_or_default()
}

fn casing_verdict(answer: &Result<Value, String>) -> (bool, String) {
    match answer.as_ref().ok().and_then(Casing::of) {
        Some(Casing::Camel) => (
            true,
            "property_casing=camel: the server writes camelCase; the daemon sends its arguments in camelCase too".into(),
        ),
        Some(Casing::Pascal) => (
            true,
            "property_casing=pascal: the server writes PascalCase, as the API documents".into(),
        ),
        None => (false, "no property names to tell the casing by".into()),
    }
}

fn enum_verdict(
    latest: &Result<Value, String>,
    accounts: &Result<Value, String>,
) -> (bool, String) {
    if let Some(unsupported) = latest.as_ref().ok().and_then(wire::envelope::unsupported) {
        return (false, unsupported.to_string());
    }
    let Ok(value) = accounts else {
        return answer_status(accounts);
    };
    let data = wire::envelope::Envelope::from_result(value.clone()).data;
    let broker_type = wire::paging::read_page(data).and_then(|page| {
        page.items
            .iter()
            .find_map(|item| field(item.as_object()?, &["BrokerType"]).cloned())
    });
    match broker_type {
        Some(Value::Number(n)) => (
            false,
            wire::Unsupported::numeric_enum(format!("ListAccounts BrokerType = {n}")).to_string(),
        ),
        Some(Value::String(name)) => (
            true,
            format!(
                "enums travel as names (BrokerType = {name:?}; enum_encoding=name_pascal or name_camel)"
            ),
        ),
        _ => (false, "no account's BrokerType to tell by".into()),
    }
}

fn page_verdict(answer: &Result<Value, String>) -> (bool, String) {
    let Ok(value) = answer else {
        return answer_status(answer);
    };
    let data = wire::envelope::Envelope::from_result(value.clone()).data;
    match &data {
        Value::Array(_) => (
            true,
            "list payload is a bare array (page_wrapper=bare_array)".into(),
        ),
        Value::Object(o) => {
            let keys: Vec<&String> = o.keys().collect();
            let readable = wire::paging::read_page(data.clone()).is_some();
            (readable, format!("list payload is an object with {keys:?}"))
        }
        other => (false, format!("unexpected list payload: {other}")),
    }
}

fn history_verdict(answer: &Result<Value, String>, after: i64) -> (bool, String) {
    let Ok(value) = answer else {
        return answer_status(answer);
    };
    let envelope = wire::envelope::Envelope::from_result(value.clone());
    if envelope.status != StatusCode::Success {
        let detail = envelope
            .error
            .and_then(|e| e.validation_errors)
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        return (
            false,
            format!(
                "GetEventsSince refused our args ({}): {detail}",
                envelope.status
            ),
        );
    }
    let Some(page) = wire::history::read_page(envelope.data) else {
        return (
            false,
            "accepted, but the result is not a readable history page".into(),
        );
    };
    if let Some(unreadable) = page.unreadable.as_ref() {
        return (false, unreadable.to_string());
    }
    if let Some(ignored) = wire::history::ignores_cursor(after, &page) {
        return (false, ignored.to_string());
    }
    (
        true,
        format!(
            "accepted; {} event(s) after {after}, types {:?}",
            page.events.len(),
            page.events
                .iter()
                .map(|e| e.event_type.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        ),
    )
}

fn not_found_verdict(answer: &Result<Value, String>) -> (bool, String) {
    let value = match answer {
        Ok(value) => value,
        Err(err) => {
            return (
                false,
                format!(
                    "idempotency_not_found=hub_error: the server throws for a key it never saw, so an unanswered call can never be settled as never sent (API §6.1): {err}"
                ),
            );
        }
    };
    let envelope = wire::envelope::Envelope::from_result(value.clone());
    if envelope.is_not_found() {
        (
            true,
            format!(
                "unknown key answers {} (read as not found)",
                envelope.status
            ),
        )
    } else {
        (
            false,
            format!(
                "unknown key answers {}: teach Envelope::is_not_found this status",
                envelope.status
            ),
        )
    }
}

/// The first position `ListPositions` lists, read from the raw answer whatever its status
/// spelling (the probe must reach the flags even on a server it will refuse).
async fn first_position_id(control: &HubClient) -> Option<i64> {
    let answer = raw(control, methods::LIST_POSITIONS, json!({}))
        .await
        .ok()?;
    let data = wire::envelope::Envelope::from_result(answer).data;
    let page = wire::paging::read_page(data)?;
    page.items
        .iter()
        .find_map(|item| field(item.as_object()?, &["Id"]).and_then(wire::int))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn agents_show_every_field_the_server_sent() {
        let agents = [
            json!({"Provider": "IBKR", "Connector": "TWS", "IsConnected": true}),
            json!({"Provider": "TastyTrade", "Connector": "API", "IsConnected": false, "Region": "US"}),
        ];
        let (headers, rows) = agent_table(&agents);
        assert_eq!(headers, ["CONNECTOR", "ISCONNECTED", "PROVIDER", "REGION"]);
        assert_eq!(rows[0], ["TWS", "true", "IBKR", ""]);
        assert_eq!(rows[1], ["API", "false", "TastyTrade", "US"]);
        let inferred = [json!({"name": "Agent-1", "connected": true, "lastSnapshotTime": "t"})];
        let (headers, rows) = agent_table(&inferred);
        assert_eq!(headers, ["NAME", "CONNECTED", "LASTSNAPSHOTTIME"]);
        assert_eq!(rows[0], ["Agent-1", "true", "t"]);
        let (headers, rows) = agent_table(&[json!("an agent as text")]);
        assert_eq!(headers, ["RAW"]);
        assert_eq!(rows[0], ["\"an agent as text\""]);
    }
}
