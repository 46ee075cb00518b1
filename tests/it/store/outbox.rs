//! The notification outbox, on both backends: queued only with a sink, in the transaction
//! of the cause; taken by each sink in order, filtered per sink; a refusal moves the sink on and
//! is kept; the bound drops the oldest and one summary counts them (a summary being sent is
//! re-sent when it grows); pruning forgets only what every sink took; ids are never reused; on
//! PostgreSQL a standby queues its `standby` notification and a fenced store queues nothing.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_supervisor::notifications::{self, Kind, Notice, Severity};
use mesolive_supervisor::store::{
    ActionSource, Effect, EventRecord, IntentState, LeaseRequest, NewIntent, NewWorkflow,
    SinkRegistration, Store, StoreError, StoreOptions, TradingState, WorkflowChange, WorkflowState,
};
use serde_json::json;

use crate::support::store::{Backend, TestDb, on_both_backends};

fn sink(key: &str, min_severity: Severity, kinds: &[&str]) -> SinkRegistration {
    SinkRegistration {
        key: key.into(),
        label: format!("webhook {key}"),
        min_severity,
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
    }
}

fn start() -> [Notice; 1] {
    [Notice::new(Kind::Startup, Severity::Info, "started")]
}

fn notice(kind: Kind, severity: Severity, text: &str) -> Notice {
    Notice::new(kind, severity, text).with_data(json!({"text": text}))
}

/// Takes every notification `sink` has pending, in order, marking each delivered.
async fn take_all(store: &Store, sink: &str) -> Vec<String> {
    let mut taken = Vec::new();
    while let Some(next) = store.next_notification(sink).await.unwrap() {
        assert!(store.notification_delivered(sink, &next).await.unwrap());
        taken.push(next.text);
    }
    taken
}

on_both_backends! {
    async fn nothing_is_queued_without_a_sink_and_a_new_sink_starts_after_the_newest(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .notify(&notice(Kind::HubDown, Severity::Critical, "lost"))
            .await
            .unwrap();
        let status = store.open_outbox(&[], 10, &start()).await.unwrap();
        assert_eq!(status.pending, 0, "no sink, nothing queued");

        let a = sink("a", Severity::Info, &[]);
        store
            .open_outbox(std::slice::from_ref(&a), 10, &start())
            .await
            .unwrap();
        store
            .notify(&notice(Kind::HubDown, Severity::Critical, "one"))
            .await
            .unwrap();
        let b = sink("b", Severity::Info, &[]);
        let again = [Notice::new(Kind::Startup, Severity::Info, "started again")];
        let status = store.open_outbox(&[a, b], 10, &again).await.unwrap();
        assert_eq!(status.pending, 3);
        assert_eq!(
            take_all(&store, "a").await,
            ["started", "one", "started again"]
        );
        assert_eq!(
            take_all(&store, "b").await,
            ["started again"],
            "a sink added later starts after the newest notification"
        );
        assert_eq!(store.outbox_status().await.unwrap().pending, 0);

        store.open_outbox(&[], 10, &start()).await.unwrap();
        assert_eq!(
            store.next_notification("a").await.unwrap(),
            None,
            "a sink no longer configured is forgotten"
        );
    }

    async fn each_sink_takes_what_it_wants_in_order_and_a_refusal_moves_it_on(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let all = sink("all", Severity::Info, &[]);
        let failures_only = sink("failures", Severity::Warning, &["workflow_failed"]);
        store
            .open_outbox(&[all, failures_only], 100, &start())
            .await
            .unwrap();
        for (kind, severity, text) in [
            (Kind::WorkflowDone, Severity::Info, "done 1"),
            (Kind::WorkflowFailed, Severity::Warning, "failed 2"),
            (Kind::HubDown, Severity::Critical, "hub 3"),
            (Kind::WorkflowFailed, Severity::Warning, "failed 4"),
        ] {
            store.notify(&notice(kind, severity, text)).await.unwrap();
        }
        assert_eq!(store.outbox_status().await.unwrap().pending, 5);

        let first = store.next_notification("failures").await.unwrap().unwrap();
        assert_eq!(first.text, "failed 2");
        assert_eq!(
            store.next_notification("failures").await.unwrap().unwrap(),
            first,
            "not taken yet: the same one again (at least once)"
        );
        assert!(
            store
                .notification_failed("failures", &first, Some(400), "HTTP 400: bad chat")
                .await
                .unwrap()
        );
        assert!(
            !store
                .notification_failed("failures", &first, Some(400), "HTTP 400: bad chat")
                .await
                .unwrap(),
            "a sink never moves back or twice"
        );
        assert_eq!(take_all(&store, "failures").await, ["failed 4"]);
        assert_eq!(
            take_all(&store, "all").await,
            ["started", "done 1", "failed 2", "hub 3", "failed 4"]
        );

        let summary = store.summary().await.unwrap().notifications;
        assert_eq!(summary.status.pending, 0);
        assert_eq!(summary.sinks.len(), 2);
        assert_eq!(summary.failures.len(), 1);
        let refused = &summary.failures[0];
        assert_eq!(
            (
                refused.label.as_str(),
                refused.seq,
                refused.kind.as_str(),
                refused.status
            ),
            ("webhook failures", first.seq, "workflow_failed", Some(400))
        );
        assert_eq!(refused.reason, "HTTP 400: bad chat");
    }

    async fn past_the_bound_the_oldest_go_and_one_summary_counts_them(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .open_outbox(&[sink("a", Severity::Info, &[])], 4, &start())
            .await
            .unwrap();
        for n in 1..=4 {
            store
                .notify(&notice(Kind::HubDown, Severity::Critical, &format!("n{n}")))
                .await
                .unwrap();
        }
        // 5 queued, 4 allowed: the two oldest go (one more for the summary's room).
        let status = store.outbox_status().await.unwrap();
        assert_eq!((status.pending, status.dropped), (4, 2));
        let queued = db
            .texts("SELECT text FROM notifications ORDER BY seq")
            .await;
        assert_eq!(&queued[..3], ["n2", "n3", "n4"]);
        assert!(
            queued[3].starts_with("2 notifications dropped"),
            "{queued:?}"
        );

        // The sink takes everything up to the summary, then reads it…
        for _ in 0..3 {
            let next = store.next_notification("a").await.unwrap().unwrap();
            store.notification_delivered("a", &next).await.unwrap();
        }
        let read = store.next_notification("a").await.unwrap().unwrap();
        assert_eq!(read.kind, "notifications_dropped");
        assert_eq!(read.id("db"), format!("db-n{}", read.seq));
        // …while more drops happen: the summary no sink has taken yet absorbs them.
        for n in 5..=9 {
            store
                .notify(&notice(Kind::HubDown, Severity::Critical, &format!("n{n}")))
                .await
                .unwrap();
        }
        assert!(
            !store.notification_delivered("a", &read).await.unwrap(),
            "the revision read is outdated: the sink does not move past it"
        );
        let grown = store.next_notification("a").await.unwrap().unwrap();
        assert_eq!(grown.seq, read.seq);
        assert!(grown.revision > read.revision);
        assert_eq!(
            grown.id("db"),
            format!("db-n{}.{}", grown.seq, grown.revision)
        );
        let dropped = store.outbox_status().await.unwrap().dropped;
        assert_eq!(grown.data["dropped"], dropped);
        assert!(
            grown
                .text
                .starts_with(&format!("{dropped} notifications dropped")),
            "{}",
            grown.text
        );
        assert_eq!(store.outbox_status().await.unwrap().pending, 4);
        assert!(store.notification_delivered("a", &grown).await.unwrap());

        // Once taken, a summary is never changed again: new drops get a new one.
        for n in 10..=14 {
            store
                .notify(&notice(Kind::HubDown, Severity::Critical, &format!("n{n}")))
                .await
                .unwrap();
        }
        let texts = take_all(&store, "a").await;
        assert_eq!(texts.len(), 4);
        assert_eq!(
            texts
                .iter()
                .filter(|t| t.contains("notifications dropped"))
                .count(),
            1
        );
        assert_eq!(texts.last().map(String::as_str), Some("n14"));
    }

    async fn pruning_forgets_only_what_every_sink_took_and_ids_are_never_reused(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .open_outbox(
                &[
                    sink("a", Severity::Info, &[]),
                    sink("b", Severity::Critical, &[]),
                ],
                100,
                &start(),
            )
            .await
            .unwrap();
        store
            .notify(&notice(Kind::HubDown, Severity::Critical, "down"))
            .await
            .unwrap();
        assert_eq!(take_all(&store, "a").await, ["started", "down"]);
        // "started" is below b's severity: nobody still wants it; "down" waits for b.
        assert_eq!(
            store
                .prune_notifications(Duration::from_secs(3600), 100)
                .await
                .unwrap(),
            0,
            "younger than the window"
        );
        assert_eq!(
            store
                .prune_notifications(Duration::ZERO, 100)
                .await
                .unwrap(),
            1
        );
        let last = store.next_notification("b").await.unwrap().unwrap();
        assert_eq!(last.text, "down");
        store.notification_delivered("b", &last).await.unwrap();
        assert_eq!(
            store
                .prune_notifications(Duration::ZERO, 100)
                .await
                .unwrap(),
            1
        );
        store
            .notify(&notice(Kind::HubUp, Severity::Critical, "up"))
            .await
            .unwrap();
        let next = store.next_notification("b").await.unwrap().unwrap();
        assert!(
            next.seq > last.seq,
            "a seq is never given out twice, even once every row was pruned"
        );
    }

    async fn causes_queue_their_notification_in_their_own_transaction(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store
            .open_outbox(&[sink("a", Severity::Info, &[])], 100, &start())
            .await
            .unwrap();
        take_all(&store, "a").await;

        // A workflow: nothing while it is active; one notice when it ends; none for a change after.
        let workflow = store
            .create_workflow(&NewWorkflow {
                kind: FlowKind::Entry,
                scope: "entry:101:PAPER-1".into(),
                signal_key: "entry/101/PAPER-1".into(),
                signal_instance: "i1".into(),
                strategy_id: 101,
                account: Some("PAPER-1".into()),
                position_id: None,
                condition: None,
                state: WorkflowState::Requested,
                reason: None,
                attempt: 1,
                deadline: None,
            })
            .await
            .unwrap()
            .unwrap();
        store
            .update_workflow(workflow.id, &WorkflowChange::to(WorkflowState::Preparing))
            .await
            .unwrap();
        assert_eq!(store.next_notification("a").await.unwrap(), None);
        store
            .update_workflow(
                workflow.id,
                &WorkflowChange::to(WorkflowState::Failed).because("prepare job failed: no legs"),
            )
            .await
            .unwrap();
        store
            .update_workflow(workflow.id, &WorkflowChange::default().because("again"))
            .await
            .unwrap();
        let failed = store.next_notification("a").await.unwrap().unwrap();
        assert_eq!(failed.kind, "workflow_failed");
        assert_eq!(failed.severity, Severity::Warning);
        assert_eq!(failed.data["workflow"], workflow.id);
        store.notification_delivered("a", &failed).await.unwrap();
        assert_eq!(store.next_notification("a").await.unwrap(), None);

        // A workflow opened cancelled (admission said no).
        store
            .create_workflow(&NewWorkflow {
                kind: FlowKind::Entry,
                scope: "entry:102:PAPER-1".into(),
                signal_key: "entry/102/PAPER-1".into(),
                signal_instance: "i2".into(),
                strategy_id: 102,
                account: Some("PAPER-1".into()),
                position_id: None,
                condition: None,
                state: WorkflowState::Cancelled,
                reason: Some("strategy 102 not in automation.allow_strategies".into()),
                attempt: 1,
                deadline: None,
            })
            .await
            .unwrap();
        // A batch with two quarantined events: one notice for the batch.
        let quarantine = |seq: i64| EventRecord {
            key: format!("bad-{seq}"),
            seq_id: Some(seq),
            target: "OnOrderUpdate".into(),
            effect: Effect::Quarantine {
                raw: "{}".into(),
                error: "missing OrderId".into(),
            },
        };
        store
            .apply_events(&[quarantine(1), quarantine(2)])
            .await
            .unwrap();
        store.apply_events(&[quarantine(1)]).await.unwrap();
        // An intent answered DuplicateRequest, settled through its record.
        let key = "db-w1-prep";
        store
            .record_intent(&NewIntent {
                key: key.into(),
                operation: "StartPreparePositionEntry".into(),
                workflow_id: Some("1".into()),
                args: json!({}),
            })
            .await
            .unwrap();
        store.mark_intent_sent(key).await.unwrap();
        store
            .settle_intent_after_answer(
                key,
                IntentState::Completed,
                Some(&json!({"JobId": "j"})),
                "DuplicateRequest",
            )
            .await
            .unwrap();
        // A plain settlement is not news.
        store
            .record_intent(&NewIntent {
                key: "db-w1-exec-g1".into(),
                operation: "ApplyPaperFills".into(),
                workflow_id: Some("1".into()),
                args: json!({}),
            })
            .await
            .unwrap();
        store
            .settle_intent("db-w1-exec-g1", IntentState::Completed, Some(&json!({})))
            .await
            .unwrap();

        let mut kinds = Vec::new();
        while let Some(next) = store.next_notification("a").await.unwrap() {
            store.notification_delivered("a", &next).await.unwrap();
            kinds.push((next.kind, next.text));
        }
        assert_eq!(kinds.len(), 3, "{kinds:#?}");
        assert_eq!(kinds[0].0, "workflow_cancelled");
        assert!(kinds[0].1.ends_with("not in automation.allow_strategies"));
        assert_eq!(
            kinds[1],
            (
                "events_quarantined".to_owned(),
                "2 events quarantined (first: OnOrderUpdate 1: missing OrderId)".to_owned()
            )
        );
        assert_eq!(kinds[2].0, "intent_duplicate");
        assert!(kinds[2].1.contains("db-w1-prep answered DuplicateRequest"));

        // Operator control: a trading-state change (none when it already was), a risk switch,
        // an operator cancellation of an active workflow (none for a final one).
        store
            .set_trading_state(TradingState::Halted, "broker outage", ActionSource::Ctl)
            .await
            .unwrap();
        store
            .set_trading_state(TradingState::Halted, "again", ActionSource::Ctl)
            .await
            .unwrap();
        store
            .risk_switch(
                "max_daily_loss",
                "PAPER-1",
                "2026-01-02",
                TradingState::ReduceOnly,
                "loss 600 ≥ 500",
            )
            .await
            .unwrap();
        let active = store
            .create_workflow(&NewWorkflow {
                kind: FlowKind::Entry,
                scope: "entry:103:PAPER-1".into(),
                signal_key: "entry/103/PAPER-1".into(),
                signal_instance: "i3".into(),
                strategy_id: 103,
                account: Some("PAPER-1".into()),
                position_id: None,
                condition: None,
                state: WorkflowState::Requested,
                reason: None,
                attempt: 1,
                deadline: None,
            })
            .await
            .unwrap()
            .unwrap();
        store
            .cancel_workflow(active.id, "by hand", ActionSource::Ctl)
            .await
            .unwrap()
            .expect("cancelled");
        assert!(
            store
                .cancel_workflow(active.id, "twice", ActionSource::Ctl)
                .await
                .unwrap()
                .is_err()
        );
        let mut kinds = Vec::new();
        while let Some(next) = store.next_notification("a").await.unwrap() {
            store.notification_delivered("a", &next).await.unwrap();
            kinds.push(next.kind);
        }
        assert_eq!(
            kinds,
            ["trading_state", "risk_switch", "workflow_cancelled"],
            "halted → halted and a second cancel are not news"
        );
    }
}

/// On PostgreSQL a standby writes one thing, in a lease transaction: its `standby`
/// notification, naming the leader; everything else it would queue is refused by the fence,
/// and a leader's notifications keep their order around it.
#[tokio::test]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn a_standby_queues_only_its_standby_notification_postgres() {
    let db = TestDb::new(Backend::Postgres);
    let leader = db.open().await;
    let standby = Store::connect(&db.location, &StoreOptions::default())
        .await
        .expect("second store");
    let request = |holder: &str| LeaseRequest {
        group: "default".into(),
        holder: holder.into(),
        ttl: Duration::from_secs(30),
    };
    let grant = leader
        .acquire_lease(&request("a"))
        .await
        .unwrap()
        .expect("free lease");
    assert!(
        standby
            .acquire_lease(&request("b"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !standby.tell_standby(&request("b"), None).await.unwrap(),
        "no sink registered yet: nothing queued (the standby tries again later)"
    );
    let told = [
        Notice::new(Kind::Startup, Severity::Info, "started"),
        notifications::notice::leader(&grant.group, &grant.holder, grant.epoch),
    ];
    leader
        .open_outbox(&[sink("s", Severity::Info, &[])], 100, &told)
        .await
        .unwrap();
    assert!(
        matches!(
            standby
                .notify(&notice(Kind::HubDown, Severity::Critical, "not mine"))
                .await,
            Err(StoreError::LeadershipLost { .. })
        ),
        "a standby's notifications are fenced like every write"
    );
    assert!(
        standby
            .tell_standby(&request("b"), None)
            .await
            .expect("the standby's own notification"),
        "a sink wants it"
    );
    leader
        .notify(&notice(Kind::HubDown, Severity::Critical, "after"))
        .await
        .unwrap();

    let mut taken = Vec::new();
    while let Some(next) = leader.next_notification("s").await.unwrap() {
        assert!(leader.notification_delivered("s", &next).await.unwrap());
        taken.push((next.kind, next.severity, next.text, next.data));
    }
    let kinds: Vec<&str> = taken.iter().map(|(kind, ..)| kind.as_str()).collect();
    assert_eq!(kinds, ["startup", "leader", "standby", "hub_down"]);
    assert_eq!(taken[1].3["epoch"], grant.epoch);
    let (_, severity, text, data) = &taken[2];
    assert_eq!(*severity, Severity::Info, "at start");
    assert_eq!(
        text,
        &format!(
            "b stands by in failover group default (at start); a leads at lease epoch {}",
            grant.epoch
        )
    );
    assert_eq!(data["leader"], "a");
}
