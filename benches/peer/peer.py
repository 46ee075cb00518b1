"""The Python baseline of `mesolive-supervisor bench` scenario 9: a careful Event Hub consumer.

It does the durable part of the daemon's work and nothing else: replay with GetEventsSince pages
of 1,000, then live callbacks; one SQLite transaction per page (replay) or per group of at most
1,000 events (live), in which every EventId is inserted with INSERT OR IGNORE (the dedupe set)
and the cursor is advanced; WAL, synchronous=FULL; no business effects.

Protocol with the bench, one line each on stdout:
  started           imports done, about to connect (the replay clock starts here)
  caught_up <seq>   the replay committed up to <seq> and the consumer is subscribed
  cursor <seq>      a live group committed, the cursor is now <seq>
Errors go to stderr and end the process with a non-zero status.
"""

import argparse
import asyncio
import sqlite3
import sys

from pysignalr.client import SignalRClient

PAGE = 1_000
GROUP = 1_000
TARGETS = [
    "OnEntrySignal", "OnExitSignal", "OnAdjustmentSignal", "OnError", "OnOrderUpdate",
    "OnPositionUpdate", "OnLegUpdate", "OnAgentStatus",
] + [
    f"OnPosition{kind}Preparation{outcome}"
    for kind in ("Entry", "Exit", "Adjustment")
    for outcome in ("Completed", "Failed")
]


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Store:
    """The dedupe set and the cursor, committed together."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY)")
        self.db.execute("CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY, seq INTEGER)")
        self.db.execute("INSERT OR IGNORE INTO cursor VALUES (1, 0)")
        self.cursor = self.db.execute("SELECT seq FROM cursor WHERE id = 1").fetchone()[0]

    def commit(self, events):
        """Inserts the EventIds of `events` (payload dicts) and moves the cursor, in one transaction."""
        seq = max(self.cursor, max(e["EventSeqId"] for e in events))
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR IGNORE INTO processed (event_id) VALUES (?)",
            [(e["EventId"],) for e in events],
        )
        self.db.execute("UPDATE cursor SET seq = ? WHERE id = 1", (seq,))
        self.db.execute("COMMIT")
        self.cursor = seq


class Consumer:
    def __init__(self, url, token, store):
        self.store = store
        self.client = SignalRClient(url, headers={"Authorization": f"Bearer {token}"})
        self.pending = []
        self.flush_scheduled = False
        self.live = False
        self.opened = asyncio.Event()
        self.failed = None
        self.client.on_open(self.on_open)
        for target in TARGETS:
            self.client.on(target, self.on_event)

    async def on_open(self):
        self.opened.set()

    async def on_event(self, arguments):
        event = arguments[0] if arguments else None
        if not isinstance(event, dict) or "EventSeqId" not in event:
            return
        self.pending.append(event)
        if not self.live:
            return
        if len(self.pending) >= GROUP:
            self.flush()
        elif not self.flush_scheduled:
            # Group commit: whatever arrived by the time the loop is idle goes in one transaction.
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self):
        self.flush_scheduled = False
        fresh = [e for e in self.pending if e["EventSeqId"] > self.store.cursor]
        self.pending = []
        if fresh:
            self.store.commit(fresh)
            say(f"cursor {self.store.cursor}")

    async def call(self, method, argument):
        done = asyncio.get_running_loop().create_future()

        async def completed(message):
            if not done.done():
                done.set_result(message)

        await self.client.send(method, [argument], completed)
        message = await asyncio.wait_for(done, 60)
        result = getattr(message, "result", None)
        if not isinstance(result, dict) or result.get("Status") != "Success":
            raise RuntimeError(f"{method} failed: {getattr(message, 'error', None) or result}")
        return result.get("Data")

    async def run(self):
        runner = asyncio.create_task(self.client.run())
        opened = asyncio.create_task(self.opened.wait())
        await asyncio.wait({runner, opened}, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()
            raise RuntimeError("the connection ended before it opened")
        await self.call("SubscribeToStrategies", {"Strategies": None})
        while True:
            page = await self.call(
                "GetEventsSince", {"AfterEventSeqId": self.store.cursor, "Limit": PAGE}
            )
            events = [item.get("Payload") or item for item in page.get("Events") or []]
            if events:
                self.store.commit(events)
            if not page.get("HasMore") or not events:
                break
        self.live = True
        self.flush()
        say(f"caught_up {self.store.cursor}")
        await runner


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the Event Hub URL")
    parser.add_argument("--token", required=True, help="the bearer token")
    parser.add_argument("--database", required=True, help="the SQLite file")
    args = parser.parse_args()
    store = Store(args.database)
    say("started")
    asyncio.run(Consumer(args.url, args.token, store).run())


if __name__ == "__main__":
    main()
