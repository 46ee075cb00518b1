//! Workflow attempts, deadlines and retries in the store, on both backends: one workflow per
//! signal instance and attempt; a deadline while active, none once final; a failed attempt's
//! `retry_at` planned, kept once final (a late step changes neither the state nor it), listed
//! and dropped; the gauges' oldest and overdue figures and the report's overdue list.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_supervisor::store::{
    IntentState, LatestAttempt, NewIntent, NewWorkflow, Recorded, SignalState, Timestamp,
    WorkflowChange, WorkflowState,
};
use serde_json::json;

use crate::support::store::{TestDb, on_both_backends, signal_push};

fn attempt(instance: &str, attempt: i64, deadline: Timestamp) -> NewWorkflow {
    NewWorkflow {
        kind: FlowKind::Exit,
        scope: "position:42".into(),
        signal_key: "exit/7/42".into(),
        signal_instance: instance.into(),
        strategy_id: 7,
        account: Some("U123".into()),
        position_id: Some(42),
        condition: None,
        state: WorkflowState::Requested,
        reason: None,
        attempt,
        deadline: Some(deadline),
    }
}

on_both_backends! {
    async fn attempts_deadlines_and_retries_follow_the_rules(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        let now = Timestamp::now();
        let past = now.minus(Duration::from_secs(60));

        let first = store
            .create_workflow(&attempt("i1", 1, past))
            .await
            .unwrap()
            .expect("opened");
        assert_eq!((first.attempt, first.deadline), (1, Some(past)));
        assert_eq!(first.retry_at, None);
        assert!(
            store
                .create_workflow(&attempt("i1", 1, now))
                .await
                .unwrap()
                .is_none(),
            "one workflow per signal instance and attempt"
        );

        // Active and past its deadline: counted, listed, the oldest active.
        let counts = store.state_counts().await.unwrap();
        assert_eq!(counts.overdue_workflows, 1);
        assert_eq!(counts.oldest_active_workflow, Some(first.created_at));
        let summary = store.summary().await.unwrap();
        assert_eq!(
            summary.overdue_workflows.iter().map(|w| w.id).collect::<Vec<_>>(),
            [first.id]
        );

        // A new step moves the deadline; an intent in flight is the oldest one.
        let later = now.plus(Duration::from_secs(600));
        let preparing = store
            .update_workflow(
                first.id,
                &WorkflowChange::to(WorkflowState::Preparing).deadline(later),
            )
            .await
            .unwrap();
        assert_eq!(preparing.deadline, Some(later));
        let Recorded::ToSend(intent) = store
            .record_intent(&NewIntent {
                key: "db-w1-a1-prep".into(),
                operation: "StartPreparePositionExit".into(),
                workflow_id: Some(first.id.to_string()),
                args: json!({}),
            })
            .await
            .unwrap()
        else {
            panic!("a new key is to be sent");
        };
        let counts = store.state_counts().await.unwrap();
        assert_eq!(counts.overdue_workflows, 0);
        assert_eq!(counts.oldest_intent_in_flight, Some(intent.created_at));

        // Failed with a next attempt planned: final, no deadline, retry_at set.
        let retry = now.plus(Duration::from_secs(5));
        let failed = store
            .update_workflow(
                first.id,
                &WorkflowChange::to(WorkflowState::Failed)
                    .because("prepare job failed")
                    .retry_at(retry),
            )
            .await
            .unwrap();
        assert_eq!(failed.state, WorkflowState::Failed);
        assert_eq!((failed.deadline, failed.retry_at), (None, Some(retry)));
        store
            .settle_intent("db-w1-a1-prep", IntentState::Failed, None)
            .await
            .unwrap();

        // A late step of the final workflow: the state, the deadline and the planned retry
        // stay as they are.
        let late = store
            .update_workflow(
                first.id,
                &WorkflowChange::to(WorkflowState::Executing)
                    .deadline(later)
                    .retry_at(later),
            )
            .await
            .unwrap();
        assert_eq!(late.state, WorkflowState::Failed, "a final state is final");
        assert_eq!(late.retry_at, Some(retry), "a final workflow keeps its retry_at");
        assert_eq!(
            store.planned_retries().await.unwrap().iter().map(|w| w.id).collect::<Vec<_>>(),
            [first.id]
        );

        // The next attempt opens beside it.
        store
            .create_workflow(&attempt("i1", 2, later))
            .await
            .unwrap()
            .expect("second attempt");

        // Dropping the plan clears retry_at and says why, once.
        store.drop_retry(first.id, "signal Off").await.unwrap();
        store.drop_retry(first.id, "again").await.unwrap();
        let dropped = store.workflow(first.id).await.unwrap().expect("kept");
        assert_eq!(dropped.retry_at, None);
        assert_eq!(
            dropped.reason.as_deref(),
            Some("prepare job failed; signal Off")
        );
        assert!(store.planned_retries().await.unwrap().is_empty());
    }
}

on_both_backends! {
    async fn the_latest_attempts_are_those_of_the_current_instances_of_signals_on(backend: Backend) {
        let db = TestDb::new(backend);
        let store = db.open().await;
        store.apply_events(&[signal_push("push-1", SignalState::On)]).await.unwrap();
        let signal = store.signals().await.unwrap().pop().expect("the signal is stored");
        assert_eq!(store.latest_attempts().await.unwrap(), [], "no workflow yet");

        let now = Timestamp::now();
        let of_instance = |instance: &str, attempt_no, state| NewWorkflow {
            kind: FlowKind::Entry,
            scope: format!("entry:7:{instance}"),
            signal_key: signal.signal_key.clone(),
            state,
            ..attempt(instance, attempt_no, now)
        };
        let current = signal.instance.as_str();
        for (instance, attempt_no, state) in [
            (current, 1, WorkflowState::Failed),
            (current, 2, WorkflowState::Requested),
            // An earlier instance of the same signal went further: not the current one's.
            ("earlier", 5, WorkflowState::Failed),
        ] {
            store
                .create_workflow(&of_instance(instance, attempt_no, state))
                .await
                .unwrap()
                .expect("opened");
        }
        assert_eq!(
            store.latest_attempts().await.unwrap(),
            [LatestAttempt {
                signal_key: signal.signal_key.clone(),
                signal_instance: signal.instance.clone(),
                attempt: 2,
            }]
        );

        store.apply_events(&[signal_push("push-2", SignalState::Off)]).await.unwrap();
        let off = store.signals().await.unwrap().pop().expect("still stored");
        assert_eq!(off.state, SignalState::Off);
        assert_eq!(store.latest_attempts().await.unwrap(), [], "a signal Off is not listed");
    }
}
