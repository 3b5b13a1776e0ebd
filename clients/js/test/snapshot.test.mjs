import { test } from "node:test";
import assert from "node:assert/strict";
import { NotifyClient } from "../dist/index.js";

// Frames as read-api sends them with snapshot=true: snapshot entries without
// id, stream.synced with the cursor, live events with ids; after a lost
// history, stream.reset (no id) and the topic's snapshot again.
const env = (id, topic, key, data, type = "device.status") => JSON.stringify({ id, topic, type, key, time: "2026-01-01T00:00:00Z", data });
const FIRST = [
  "retry: 2000\n\n",
  `event: device.status\ndata: ${env("n1", "device:1", "battery", 90)}\n\n`,
  `event: device.status\ndata: ${env("n2", "device:1", "online", true)}\n\n`,
  `event: maintenance\ndata: ${env("n3", "broadcast", "window", "02:00")}\n\n`,
  `id: cur-sync\nevent: stream.synced\ndata: {"topics":["device:1","broadcast"]}\n\n`,
  `id: cur-4\nevent: device.status\ndata: ${env("n4", "device:1", "battery", 89)}\n\n`,
  `id: cur-5\nevent: device.status\ndata: ${env("n5", "device:1", "online", null)}\n\n`,
  `id: cur-6\nevent: note\ndata: ${JSON.stringify({ id: "n6", topic: "device:1", type: "note", time: "2026-01-01T00:00:00Z", data: "unkeyed" })}\n\n`,
].join("");
const AFTER_RESET = [
  "retry: 2000\n\n",
  `event: stream.reset\ndata: {"topics":["device:1"],"reason":"history trimmed"}\n\n`,
  `event: device.status\ndata: ${env("n9", "device:1", "fw", "2.4.1")}\n\n`,
  `id: cur-sync2\nevent: stream.synced\ndata: {"topics":["device:1","broadcast"]}\n\n`,
  `id: cur-10\nevent: device.status\ndata: ${env("n10", "device:1", "battery", 70)}\n\n`,
].join("");

function server(bodies) {
  const requests = [];
  const ctls = [];
  const fetch = async (url, init) => {
    requests.push({ url, headers: init.headers });
    const text = bodies[Math.min(requests.length - 1, bodies.length - 1)];
    const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(text)); ctls.push(c); } });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };
  return { fetch, requests, ctls };
}

async function until(what, cond, within = 3000) {
  const end = Date.now() + within;
  while (!cond()) {
    if (Date.now() > end) throw new Error("not within " + within + " ms: " + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const values = (m) => Object.fromEntries([...m].map(([k, e]) => [k, e.data]));

test("snapshot: state folded with live events, synced, data null removes; listeners get live events only", async () => {
  const s = server([FIRST]);
  const c = new NotifyClient({ url: "http://read.test/", topics: ["device:1"], snapshot: true, share: false, getToken: () => "tok", fetch: s.fetch });
  const live = [];
  const synced = [];
  c.on("*", (n) => live.push(n.id));
  c.onSynced((t) => synced.push(t));
  await until("live events", () => live.length === 3);
  assert.equal(new URL(s.requests[0].url).searchParams.get("snapshot"), "true");
  assert.equal(new URL(s.requests[0].url).pathname, "/v1/stream");
  assert.deepEqual(live, ["n4", "n5", "n6"]);
  assert.deepEqual(synced, [["device:1", "broadcast"]]);
  assert.equal(c.synced, true);
  assert.deepEqual(values(c.topicState("device:1")), { battery: 89 });
  assert.deepEqual(values(c.topicState("broadcast")), { window: "02:00" });
  assert.equal(c.lastEventId, "cur-6");
  c.close();
});

test("snapshot: stream.reset tells the app and rebuilds the topic's state from the snapshot that follows", async () => {
  const s = server([FIRST, AFTER_RESET]);
  const c = new NotifyClient({ url: "http://read.test", topics: ["device:1"], snapshot: true, share: false, minDelay: 5, getToken: () => "tok", fetch: s.fetch });
  const resets = [];
  const live = [];
  c.onReset((r) => resets.push(r));
  c.on("*", (n) => live.push(n.id));
  await until("first stream", () => live.length === 3);
  s.ctls[0].close(); // the pod went away
  await until("after reset", () => live.length === 4);
  assert.equal(s.requests[1].headers["Last-Event-ID"], "cur-6");
  assert.deepEqual(resets, [{ topics: ["device:1"], reason: "history trimmed" }]);
  assert.deepEqual(values(c.topicState("device:1")), { fw: "2.4.1", battery: 70 });
  assert.deepEqual([...c.topicState("device:1").keys()], ["fw", "battery"], "keys in the order they were last updated");
  assert.deepEqual(values(c.topicState("broadcast")), { window: "02:00" }, "a topic that resumed keeps its state");
  assert.equal(c.synced, true);
  assert.equal(c.lastEventId, "cur-10");
  c.close();
});

test("snapshot: a reconnect before stream.synced gets a full snapshot again, replacing (not merging) the state", async () => {
  const partial = `event: device.status\ndata: ${env("n1", "device:1", "gone", 1)}\n\n`;
  const s = server([partial, `event: device.status\ndata: ${env("n2", "device:1", "kept", 2)}\n\nid: c\nevent: stream.synced\ndata: {"topics":["device:1"]}\n\n`]);
  const c = new NotifyClient({ url: "http://read.test", topics: ["device:1"], snapshot: true, share: false, minDelay: 5, getToken: () => "tok", fetch: s.fetch });
  await until("first entry", () => c.topicState("device:1").size === 1);
  s.ctls[0].close();
  await until("synced", () => c.synced);
  assert.equal(s.requests[1].headers["Last-Event-ID"], undefined);
  assert.deepEqual(values(c.topicState("device:1")), { kept: 2 });
  c.close();
});

test("EventSource fallback where fetch cannot stream: token and cursor in the query, no native retry", async () => {
  const made = [];
  class FakeES {
    constructor(url) { this.url = url; this.ls = {}; made.push(this); queueMicrotask(() => this.onopen()); }
    addEventListener(t, fn) { this.ls[t] = fn; }
    close() { this.closed = true; }
    fire(type, data, lastEventId) { this.ls[type]({ type, data, lastEventId }); }
  }
  const saved = globalThis.ReadableStream;
  globalThis.ReadableStream = undefined;
  try {
    const c = new NotifyClient({ url: "http://read.test", topics: ["seller:42"], share: false, minDelay: 5, getToken: () => "tok", EventSource: FakeES, lastEventId: "c0" });
    const got = [];
    c.on("task.assigned", (n) => got.push(n.id));
    await until("open", () => c.state.status === "open");
    const u = new URL(made[0].url);
    assert.equal(u.searchParams.get("access_token"), "tok");
    assert.equal(u.searchParams.get("lastEventId"), "c0");
    made[0].fire("task.assigned", env("n1", "seller:42", undefined, 1, "task.assigned"), "c1");
    made[0].onerror();
    assert.equal(made[0].closed, true);
    await until("reconnect", () => made.length === 2 && c.state.status === "open");
    assert.equal(new URL(made[1].url).searchParams.get("lastEventId"), "c1");
    assert.deepEqual(got, ["n1"]);
    c.close();
  } finally {
    globalThis.ReadableStream = saved;
  }
});
