// A short session of the official @microsoft/signalr client against the simulator's Event Hub:
// connect with the token, get the on-connect push, subscribe, receive live callbacks, replay
// them with GetEventsSince across pages. `tests/it/conformance.rs` starts a simulator in-process
// and runs this script against it (`cargo test -p mesolive-sim --test it -- --ignored conformance`).
//
// Usage: node sim_session.mjs <Event Hub URL> <admin API URL> [bearer token]
// Exits 0 when every check passes, 1 otherwise.

import * as signalR from "@microsoft/signalr";

const [url, admin, token = "sim-token"] = process.argv.slice(2);
if (!url || !admin) {
  console.error("usage: node sim_session.mjs <Event Hub URL> <admin API URL> [bearer token]");
  process.exit(2);
}

const CALLBACKS = [
  "OnEntrySignal", "OnExitSignal", "OnAdjustmentSignal", "OnError", "OnOrderUpdate",
  "OnPositionUpdate", "OnLegUpdate", "OnAgentStatus",
  "OnPositionEntryPreparationCompleted", "OnPositionEntryPreparationFailed",
  "OnPositionExitPreparationCompleted", "OnPositionExitPreparationFailed",
  "OnPositionAdjustmentPreparationCompleted", "OnPositionAdjustmentPreparationFailed",
];
const EMITTED = 500;
const PAGE = 120;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function eventually(what, condition, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function post(path, body) {
  const response = await fetch(admin + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert(response.ok, `POST ${path}: HTTP ${response.status}`);
  return response.json();
}

/** Calls a hub method and returns the envelope's Data, failing on a non-success Status. */
async function data(connection, method, args) {
  const envelope = await connection.invoke(method, args);
  assert(envelope.Status === "Success", `${method}: ${JSON.stringify(envelope)}`);
  return envelope.Data;
}

function build(accessToken) {
  return new signalR.HubConnectionBuilder()
    .withUrl(url, { accessTokenFactory: () => accessToken })
    .configureLogging(signalR.LogLevel.Critical)
    .build();
}

// Everything the session saw, in arrival order; handlers are registered before start.
const seen = [];
const connection = build(token);
for (const name of CALLBACKS) {
  connection.on(name, (event) => { seen.push({ name, event }); });
}
const live = () => seen.filter((s) => s.event.EventSeqId !== undefined);
const context = {};

const checks = [
  ["an active signal exists before the client connects", async () => {
    context.signal = await post("/signals", { kind: "entry", state: "On", strategy_id: 101 });
  }],
  ["a wrong token is refused", async () => {
    const intruder = build("not-the-token");
    let refused = false;
    try {
      await intruder.start();
    } catch (error) {
      refused = String(error).includes("401") || String(error.statusCode) === "401";
    }
    assert(refused, "start() with a wrong token should fail with 401");
  }],
  ["connects with the bearer token", async () => {
    await connection.start();
    assert(connection.state === signalR.HubConnectionState.Connected, `state ${connection.state}`);
  }],
  ["the active signal is pushed before any subscribe, with EventId and without EventSeqId", async () => {
    await eventually("the on-connect push", () => seen.length >= 1);
    const push = seen[0];
    assert(push.name === "OnEntrySignal", `first callback: ${push.name}`);
    assert(push.event.EventId === context.signal.event_id, "the push carries the signal's EventId");
    assert(!("EventSeqId" in push.event), "a push carries no EventSeqId");
  }],
  ["SubscribeToStrategies(null) joins every strategy", async () => {
    const result = await data(connection, "SubscribeToStrategies", { Strategies: null });
    assert(result.SuccessfulStrategies.length === 3, JSON.stringify(result));
    assert(result.FailedStrategies.length === 0, JSON.stringify(result));
  }],
  ["live callbacks arrive in EventSeqId order", async () => {
    context.latest = (await data(connection, "GetLatestEventSeqId", {})).LatestEventSeqId;
    await post("/events/emit", { count: EMITTED });
    await eventually(`${EMITTED} live callbacks`, () => live().length >= EMITTED);
    live().forEach((s, i) => {
      assert(s.event.EventSeqId === context.latest + 1 + i, `callback ${i} has EventSeqId ${s.event.EventSeqId}`);
    });
  }],
  ["GetEventsSince replays exactly those events across pages", async () => {
    const replayed = [];
    let token = null;
    let pages = 0;
    do {
      const page = await data(connection, "GetEventsSince",
        { AfterEventSeqId: context.latest, Limit: PAGE, ContinuationToken: token });
      replayed.push(...page.Events);
      token = page.ContinuationToken;
      pages += 1;
    } while (token);
    assert(pages === Math.ceil(EMITTED / PAGE), `pages: ${pages}`);
    assert(replayed.length === EMITTED, `replayed ${replayed.length}`);
    replayed.forEach((event, i) => {
      const got = live()[i];
      assert(event.EventSeqId === got.event.EventSeqId, `seq at ${i}`);
      assert(event.EventId === got.event.EventId, `EventId at ${i}`);
      assert(event.EventType === got.name, `EventType at ${i}: ${event.EventType} vs ${got.name}`);
    });
  }],
  ["stop closes cleanly", async () => {
    await connection.stop();
    assert(connection.state === signalR.HubConnectionState.Disconnected, `state ${connection.state}`);
  }],
];

let failures = 0;
for (const [name, check] of checks) {
  try {
    await check();
    console.log(`PASS ${name}`);
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name}: ${error.message ?? error}`);
  }
}
console.log(`${checks.length - failures}/${checks.length} simulator checks passed`);
if (connection.state !== signalR.HubConnectionState.Disconnected) {
  await connection.stop().catch(() => {});
}
process.exit(failures === 0 ? 0 : 1);
