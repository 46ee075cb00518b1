// Checks a running hub against the official @microsoft/signalr client. `tests/it/conformance.rs`
// serves the test hub in-process and runs this script against it
// (`cargo test -p signalr --test it -- --ignored conformance`).
//
// Usage: node conformance.mjs <hub URL> [bearer token]
// Exits 0 when every check passes, 1 otherwise. To extend, add an entry to `checks`: each is
// an async function that throws on failure and may use the shared `hub` context.

import * as signalR from "@microsoft/signalr";

const [url, token = "conformance-token"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node conformance.mjs <hub URL> [bearer token]");
  process.exit(2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  assert(a === e, `${what}: expected ${e}, got ${a}`);
}

async function eventually(what, condition, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function rejects(promise, what) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`${what} should have failed`);
}

/** Collects a stream into {items, error}, resolving when it completes or fails. */
function collect(stream) {
  return new Promise((resolve) => {
    const items = [];
    stream.subscribe({
      next: (item) => items.push(item),
      complete: () => resolve({ items, error: null }),
      error: (error) => resolve({ items, error }),
    });
  });
}

/** A connection with every client handler registered before start, as an app would. */
function connect() {
  const seen = { welcome: [], seq: [], closed: [] };
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(url, { accessTokenFactory: () => token })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  // Handlers must return nothing unless they answer a client-result call.
  connection.on("Welcome", (id) => { seen.welcome.push(id); });
  connection.on("Seq", (n) => { seen.seq.push(n); });
  connection.on("GetValue", () => 42);
  connection.onclose((error) => { seen.closed.push(error ?? null); });
  return { connection, seen };
}

const checks = [
  ["connects with a bearer token over WebSockets", async (hub) => {
    await hub.connection.start();
    assertEqual(hub.connection.state, signalR.HubConnectionState.Connected, "state");
    assert(hub.connection.connectionId, "a connectionId from negotiate");
  }],
  ["receives the on-connect push", async (hub) => {
    await eventually("Welcome", () => hub.seen.welcome.length === 1);
    assertEqual(hub.seen.welcome[0], hub.connection.connectionId, "Welcome argument");
  }],
  ["invoke returns a result", async (hub) => {
    assertEqual(await hub.connection.invoke("Add", 40, 2), 42, "Add(40, 2)");
  }],
  ["invoke of a void method returns null", async (hub) => {
    assertEqual(await hub.connection.invoke("Reset"), null, "Reset()");
  }],
  ["invoke surfaces hub errors", async (hub) => {
    const error = await rejects(hub.connection.invoke("Fail"), "Fail()");
    assert(error.message.includes("HubException: boom"), `error text: ${error.message}`);
  }],
  ["invoke of an unknown method fails with the ASP.NET Core text", async (hub) => {
    const error = await rejects(hub.connection.invoke("Nope"), "Nope()");
    assert(error.message.includes("Unknown hub method 'Nope'"), `error text: ${error.message}`);
  }],
  ["send (no reply) keeps the connection usable", async (hub) => {
    await hub.connection.send("Reset");
    assertEqual(await hub.connection.invoke("Echo", "still here"), "still here", "Echo");
  }],
  ["server->client callbacks arrive in order", async (hub) => {
    const count = 2000;
    assertEqual(await hub.connection.invoke("Push", count), count, "Push");
    await eventually("every Seq callback", () => hub.seen.seq.length === count);
    hub.seen.seq.forEach((n, i) => assert(n === i, `callback ${i} carried ${n}`));
  }],
  ["a stream yields its items then completes", async (hub) => {
    const { items, error } = await collect(hub.connection.stream("Counter", 5));
    assertEqual(error, null, "stream error");
    assertEqual(items, [0, 1, 2, 3, 4], "stream items");
  }],
  ["a failing stream yields its items then the error", async (hub) => {
    const { items, error } = await collect(hub.connection.stream("FailAfter", 2));
    assertEqual(items, [0, 1], "items before the error");
    assert(error && error.message.includes("An error occurred on the server while streaming results."),
      `stream error: ${error}`);
  }],
  ["cancelling a stream stops it on the server", async (hub) => {
    const before = await hub.connection.invoke("CancelledStreams");
    const items = [];
    const subscription = hub.connection.stream("Endless", 5).subscribe({
      next: (item) => items.push(item),
      complete: () => {},
      error: () => {},
    });
    await eventually("three items", () => items.length >= 3);
    subscription.dispose(); // sends CancelInvocation
    await eventually("the server to drop the producer",
      async () => (await hub.connection.invoke("CancelledStreams")) === before + 1);
  }],
  ["a client result is returned to the server", async (hub) => {
    assertEqual(await hub.connection.invoke("AskClient"), { ok: 42 }, "AskClient");
  }],
  ["stop closes cleanly", async (hub) => {
    await hub.connection.stop();
    assertEqual(hub.connection.state, signalR.HubConnectionState.Disconnected, "state");
    assertEqual(hub.seen.closed, [null], "onclose error");
  }],
];

const hub = connect();
let failures = 0;
for (const [name, check] of checks) {
  try {
    await check(hub);
    console.log(`PASS ${name}`);
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name}: ${error.message ?? error}`);
  }
}
console.log(`${checks.length - failures}/${checks.length} checks passed`);
if (hub.connection.state !== signalR.HubConnectionState.Disconnected) {
  await hub.connection.stop().catch(() => {});
}
process.exit(failures === 0 ? 0 : 1);
