//! The simulator's Data Hub and hub authentication: snapshots, streams that end when their
//! position closes, provider-required underlying data, 401 on negotiate and on the upgrade.

use std::time::Duration;

use futures_util::StreamExt;
use mesolive_api::lenient::decode;
use mesolive_api::models::{LivePrices, PositionDataEntry, StatusCode};
use mesolive_api::wire::args;
use mesolive_sim::Hub;
use serde_json::{Value, json};
use signalr::{AuthStage, SignalrError};

use crate::support::*;

#[tokio::test]
async fn position_snapshots_honour_the_include_and_field_selectors() {
    let sim = start().await;
    let data = sim.connect(Hub::Data).await;
    let full: PositionDataEntry =
        decode(ok(&data, "GetPositionSnapshot", args::position_data(1001)).await).unwrap();
    let prices = full.position_prices.expect("position prices");
    assert!(prices.bid.is_some() && prices.ask.is_some() && prices.mark.is_some());
    assert!(
        full.position_pn_ls
            .expect("position PnL")
            .realized
            .is_some()
    );
    assert!(full.position_greeks.is_some());
    assert_eq!(full.leg_prices.expect("leg prices").len(), 4);

    let narrow = json!({
        "PositionId": 1001, "IncludePosition": "Prices", "IncludeLegs": "None",
        "IncludeLegGroups": "Prices, PnL", "PriceFields": "Mark",
    });
    let raw = ok(&data, "GetPositionSnapshot", narrow).await;
    let entry: PositionDataEntry = decode(raw.clone()).unwrap();
    let prices = entry.position_prices.expect("position prices");
    assert!(prices.mark.is_some() && prices.bid.is_none() && prices.ask.is_none());
    assert!(
        entry.position_pn_ls.is_none()
            && entry.position_greeks.is_none()
            && entry.leg_prices.is_none()
    );
    assert_eq!(raw["LegGroupPrices"].as_object().unwrap().len(), 2);
    assert!(raw["LegGroupGreeks"].is_null());

    let unknown = call(&data, "GetPositionSnapshot", args::position_data(4242)).await;
    assert!(unknown.is_not_found());
    let bad_flags = call(
        &data,
        "GetPositionSnapshot",
        json!({"PositionId": 1001, "IncludeLegs": "Colors"}),
    )
    .await;
    assert_eq!(bad_flags.status, StatusCode::ValidationError);
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn position_streams_end_with_a_completion_when_the_position_closes() {
    let sim = start().await;
    let data = sim.connect(Hub::Data).await;
    let mut stream = data
        .stream::<PositionDataEntry>("StreamPositionData", vec![args::position_data(1001)])
        .unwrap();
    let mut other = data
        .stream::<PositionDataEntry>("StreamPositionData", vec![args::position_data(1002)])
        .unwrap();
    for _ in 0..3 {
        let item = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(item.position_prices.is_some());
    }
    sim.admin
        .post("/positions/close", json!({"ids": [1001]}))
        .await;
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Some(item) = stream.next().await {
            item.expect("items until the end, then a clean Completion");
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream of the closed position ended");
    assert!(
        tokio::time::timeout(PATIENCE, other.next())
            .await
            .unwrap()
            .unwrap()
            .is_ok(),
        "others go on"
    );

    let mut closed = data
        .stream::<Value>("StreamPositionData", vec![args::position_data(1001)])
        .unwrap();
    assert!(
        tokio::time::timeout(PATIENCE, closed.next())
            .await
            .unwrap()
            .is_none(),
        "a closed position's stream ends at once"
    );
    let mut unknown = data
        .stream::<Value>("StreamPositionData", vec![args::position_data(4242)])
        .unwrap();
    match tokio::time::timeout(PATIENCE, unknown.next())
        .await
        .unwrap()
    {
        Some(Err(SignalrError::Hub { message, .. })) => assert!(message.contains("4242")),
        other => panic!("expected a stream error, got {other:?}"),
    }
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn streams_send_at_most_one_update_per_interval() {
    let sim = start().await; // 50 ms interval
    let data = sim.connect(Hub::Data).await;
    let mut stream = data
        .stream::<Value>("StreamPositionData", vec![args::position_data(1002)])
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut items = 0;
    while started.elapsed() < Duration::from_millis(500) {
        if let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(100), stream.next()).await
        {
            item.unwrap();
            items += 1;
        }
    }
    assert!(
        (3..=12).contains(&items),
        "about one item per 50 ms, got {items} in 500 ms"
    );
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn underlying_data_requires_a_provider_when_told_to() {
    let lenient = start().await;
    let data = lenient.connect(Hub::Data).await;
    // By default the server's default provider answers.
    ok(
        &data,
        "GetUnderlyingSnapshot",
        args::underlying("SPX", None),
    )
    .await;
    lenient.sim.shutdown().await;

    let mut options = fast_options();
    options.faults.require_provider = Some(true);
    let sim = start_with(options).await;
    let data = sim.connect(Hub::Data).await;
    let missing = call(
        &data,
        "GetUnderlyingSnapshot",
        args::underlying("SPX", None),
    )
    .await;
    assert_eq!(missing.status, StatusCode::ValidationError);
    assert!(
        missing
            .error
            .unwrap()
            .validation_errors
            .unwrap()
            .contains_key("Provider")
    );
    let empty = call(
        &data,
        "GetUnderlyingSnapshot",
        args::underlying("SPX", Some("")),
    )
    .await;
    assert_eq!(empty.status, StatusCode::ValidationError);
    let prices: LivePrices = decode(
        ok(
            &data,
            "GetUnderlyingSnapshot",
            args::underlying("SPX", Some("IBKR")),
        )
        .await,
    )
    .unwrap();
    assert!(prices.mark.unwrap() > rust_decimal::Decimal::from(1000));

    let mut refused = data
        .stream::<Value>("StreamUnderlyingData", vec![args::underlying("SPX", None)])
        .unwrap();
    match tokio::time::timeout(PATIENCE, refused.next())
        .await
        .unwrap()
    {
        Some(Err(SignalrError::Hub { message, .. })) => assert!(message.contains("Provider")),
        other => panic!("expected a stream error, got {other:?}"),
    }
    let mut stream = data
        .stream::<LivePrices>(
            "StreamUnderlyingData",
            vec![args::underlying("RUT", Some("IBKR"))],
        )
        .unwrap();
    for _ in 0..2 {
        let item = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(item.mark.is_some());
    }
    sim.sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_or_missing_token_gets_401_on_negotiate_and_on_the_upgrade() {
    let sim = start().await;
    for hub in Hub::ALL {
        match sim.try_connect(hub, "wrong-token").await {
            Err(SignalrError::Unauthorized {
                stage: AuthStage::Negotiate,
                status: 401,
            }) => {}
            other => panic!("{hub:?}: expected 401 on negotiate, got {other:?}"),
        }
    }
    let http = reqwest::Client::new();
    let negotiate = format!(
        "{}/negotiate?negotiateVersion=1",
        sim.sim.hub_url(Hub::Event)
    );
    let anonymous = http.post(&negotiate).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let negotiated: Value = http
        .post(&negotiate)
        .bearer_auth(sim.sim.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = negotiated["connectionToken"].as_str().unwrap();
    let upgrade = http
        .get(format!("{}?id={token}", sim.sim.hub_url(Hub::Event)))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status().as_u16(), 401, "no token on the upgrade");
    sim.sim.shutdown().await;
}
