import { test } from "node:test";
import assert from "node:assert/strict";
import { NotifyClient, NotifyError } from "../dist/index.js";

// fakeLocks grants each name to one holder at a time, in request order, as
// navigator.locks does; an aborted waiter leaves the queue.
function fakeLocks() {
  const queues = new Map();
  const next = (name) => {
    const q = queues.get(name);
    if (!q.length || q.busy) return;
    q.busy = true;
    const { cb, resolve } = q.shift();
    Promise.resolve(cb()).finally(() => {
      q.busy = false;
      resolve();
      next(name);
    });
  };
  return {
    request(name, opts, cb) {
      if (!queues.has(name)) queues.set(name, Object.assign([], { busy: false }));
      return new Promise((resolve, reject) => {
        const entry = { cb, resolve };
        queues.get(name).push(entry);
        opts.signal?.addEventListener("abort", () => {
          const q = queues.get(name);
          const i = q.indexOf(entry);
          if (i >= 0) {
            q.splice(i, 1);
            reject(new DOMException("aborted", "AbortError"));
          }
        });
        next(name);
      });
    },
  };
}

async function until(what, cond, within = 3000) {
  const end = Date.now() + within;
  while (!cond()) {
    if (Date.now() > end) throw new Error("not within " + within + " ms: " + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const frame = (i) => `id: c${i}\nevent: tick\ndata: ${JSON.stringify({ id: "n" + i, topic: "fleet:1", type: "tick", time: "2026-01-01T00:00:00Z", data: i })}\n\n`;

test("tabs share one connection; when the leader closes another resumes from its cursor, no gap, no repeat", async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", { value: { locks: fakeLocks() }, configurable: true });
  const streams = [];
  const requests = [];
  const fetch = async (url, init) => {
    requests.push(init.headers["Last-Event-ID"] || "");
    let ctl;
    const body = new ReadableStream({ start(c) { ctl = c; } });
    init.signal.addEventListener("abort", () => { try { ctl.error(new Error("aborted")); } catch {} });
    streams.push({ push: (s) => ctl.enqueue(new TextEncoder().encode(s)) });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };
  try {
    const opts = { url: "http://read.test", topics: ["fleet:1"], getToken: () => "tok", fetch, minDelay: 5 };
    const tabs = [new NotifyClient(opts), new NotifyClient(opts), new NotifyClient(opts)];
    const got = tabs.map(() => []);
    tabs.forEach((c, i) => c.on("tick", (n) => got[i].push(n.data)));
    await until("one stream open", () => streams.length === 1 && tabs.every((c) => c.state.status === "open"));
    assert.deepEqual(tabs.map((c) => c.leader), [true, false, false]);
    for (let i = 1; i <= 5; i++) streams[0].push(frame(i));
    await until("every tab has 5", () => got.every((g) => g.length === 5));

    tabs[0].close(); // the leader tab goes away
    await until("a new leader's stream", () => streams.length === 2);
    assert.equal(requests[1], "c5", "the new leader resumes from the cursor it saw");
    streams[1].push(frame(5) + frame(6) + frame(7)); // a replay overlapping what was seen is dropped
    await until("the others have 7", () => got[1].length >= 7 && got[2].length >= 7);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(got[1], [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(got[2], [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(tabs.map((c) => c.leader).sort(), [false, false, true], "one of the remaining tabs leads");
    assert.equal(streams.length, 2);

    // A tab that joins later gets the leader's cursor and state at once.
    const late = new NotifyClient(opts);
    await until("late tab synced", () => late.lastEventId === "c7" && late.state.status === "open");
    // The leader's state reaches every tab, its error with status and reason.
    const leader = [tabs[1], tabs[2], late].find((c) => c.leader);
    leader.setState({ status: "retrying", retryAt: 1, error: new NotifyError(503, "HTTP 503: Redis is unavailable") });
    await until("followers see retrying", () => [tabs[1], tabs[2], late].every((c) => c.state.status === "retrying"));
    const follower = [tabs[1], tabs[2], late].find((c) => !c.leader);
    assert.ok(follower.state.error instanceof NotifyError);
    assert.equal(follower.state.error.status, 503);
    assert.match(follower.state.error.message, /Redis/);
    tabs.slice(1).forEach((c) => c.close());
    late.close();
  } finally {
    if (saved) Object.defineProperty(globalThis, "navigator", saved);
    else delete globalThis.navigator;
  }
});
