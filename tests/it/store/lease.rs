//! The leadership lease and fencing on a real PostgreSQL: one holder at a time, the epoch grows
//! with every acquisition, a holder whose lease moved on cannot commit anything, and a new
//! holder reads the dedupe set its predecessor wrote (exactly once across a takeover).

use std::time::Duration;

use mesolive_supervisor::store::{LeaseRequest, RecordOutcome, Store, StoreError, StoreOptions};

use crate::support::store::{Backend, TestDb, order_event};

fn request(holder: &str, ttl: Duration) -> LeaseRequest {
    LeaseRequest {
        group: "default".into(),
        holder: holder.into(),
        ttl,
    }
}

async fn second_store(db: &TestDb) -> Store {
    Store::connect(&db.location, &StoreOptions::default())
        .await
        .expect("second store")
}

#[tokio::test]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
async fn one_holder_at_a_time_and_a_fenced_holder_commits_nothing_postgres() {
    let db = TestDb::new(Backend::Postgres);
    let a = db.open().await;
    let b = second_store(&db).await;
    let ttl = Duration::from_millis(600);

    let grant_a = a
        .acquire_lease(&request("a", ttl))
        .await
        .unwrap()
        .expect("free lease");
    assert_eq!(grant_a.epoch, 1);
    assert!(
        b.acquire_lease(&request("b", ttl)).await.unwrap().is_none(),
        "held by a"
    );
    // A standby that tried and failed writes nothing.
    assert!(matches!(
        b.apply_events(&[order_event(1, 1, 1)]).await,
        Err(StoreError::LeadershipLost { .. })
    ));
    let applied = a
        .apply_events(
            &(1..=10)
                .map(|s| order_event(s, s % 3, s))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(applied.applied_count(), 10);
    assert!(a.renew_lease(&grant_a, ttl).await.unwrap().is_some());

    // a stops renewing; once its lease expired (server clock), b takes it at the next epoch.
    let grant_b = testkit::wait_some(
        "b takes the expired lease",
        Duration::from_secs(5),
        || async { b.acquire_lease(&request("b", ttl)).await.unwrap() },
    )
    .await;
    assert_eq!(grant_b.epoch, 2);

    // a, fenced: its next write is refused and changes nothing; its renewal says it is gone.
    let refused = a.apply_events(&[order_event(11, 1, 11)]).await;
    assert!(
        matches!(refused, Err(StoreError::LeadershipLost { epoch: 1, .. })),
        "{refused:?}"
    );
    assert!(a.renew_lease(&grant_a, ttl).await.unwrap().is_none());
    assert!(matches!(
        a.record_intent(&mesolive_supervisor::store::NewIntent {
            key: "k".into(),
            operation: "SendOrder".into(),
            workflow_id: None,
            args: serde_json::json!({}),
        })
        .await,
        Err(StoreError::LeadershipLost { .. })
    ));

    // b replays an overlap: what a committed is known to b (its dedupe index reads the table).
    let overlap: Vec<_> = (5..=12).map(|s| order_event(s, s % 3, s)).collect();
    let mut unsequenced = order_event(7, 1, 7);
    unsequenced.seq_id = None;
    let mut batch = overlap.clone();
    batch.push(unsequenced);
    let outcome = b.apply_events(&batch).await.unwrap();
    assert_eq!(outcome.cursor, Some(12));
    assert_eq!(outcome.applied_count(), 2, "{:?}", outcome.outcomes);
    assert_eq!(
        outcome.outcomes.last(),
        Some(&RecordOutcome::AlreadyProcessed)
    );
    let total: i64 = b
        .applied_event_counts()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(total, 12, "every event applied once");

    // A clean release lets a take it back at once, at the next epoch.
    b.release_lease(&grant_b).await.unwrap();
    let again = a
        .acquire_lease(&request("a", ttl))
        .await
        .unwrap()
        .expect("released");
    assert_eq!(again.epoch, 3);
    a.apply_events(&[order_event(13, 1, 13)]).await.unwrap();
    let leases = b.leases().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(
        (leases[0].holder.as_deref(), leases[0].epoch),
        (Some("a"), 3)
    );
    assert!(leases[0].is_held());
}

#[tokio::test]
async fn an_sqlite_store_has_no_lease_and_needs_none() {
    let db = TestDb::new(Backend::Sqlite);
    let store = db.open().await;
    assert!(matches!(
        store
            .acquire_lease(&request("a", Duration::from_secs(1)))
            .await,
        Err(StoreError::LeaseUnsupported { .. })
    ));
    assert!(store.leases().await.unwrap().is_empty());
    assert!(!store.is_shared());
}
