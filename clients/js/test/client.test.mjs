import { test } from "node:test";
import assert from "node:assert/strict";
import { NotifyClient, backoff, retryAfter } from "../dist/index.js";

// fakeServer answers the client's fetches from a script: each entry gets the
// request and returns a Response, or throws (a network error). A stream body
// is a ReadableStream the test writes to through stream.push / stream.end.
function fakeServer(script) {
  const requests = [];
  let i = 0;
  const fetch = async (url, init) => {
    requests.push({ url: String(url), headers: { ...init.headers } });
    const step = script[Math.min(i++, script.length - 1)];
    return step({ url: String(url), headers: init.headers, signal: init.signal });
  };
  return { fetch, requests };
}

function sse(frames, { keepOpen = false } = {}) {
  let ctl;
  const body = new ReadableStream({
    start(c) {
      ctl = c;
      c.enqueue(new TextEncoder().encode(frames));
      if (!keepOpen) c.close();
    },
  });
  const res = new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  res.push = (s) => ctl.enqueue(new TextEncoder().encode(s));
  res.end = () => ctl.close();
  return res;
}

const problem = (status, headers = {}) =>
  new Response(JSON.stringify({ title: "t", status, detail: "why " + status }), { status, headers: { "content-type": "application/problem+json", ...headers } });

const ev = (id, topic, type, data, key) =>
  (id ? `id: ${id}\n` : "") + `event: ${type}\ndata: ${JSON.stringify({ id: "n" + (id || Math.random()), topic, type, time: "2026-01-01T00:00:00Z", data, ...(key ? { key } : {}) })}\n\n`;

// until polls cond (bounded) and fails with what it waited for.
async function until(what, cond, within = 3000) {
  const end = Date.now() + within;
  while (!cond()) {
    if (Date.now() > end) throw new Error("not within " + within + " ms: " + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const opts = (fetch, more = {}) => ({ url: "http://read.test", topics: ["seller:42"], getToken: async () => "tok", share: false, minDelay: 5, maxDelay: 20, fetch, ...more });

test("backoff is full jitter, capped; Retry-After in seconds or as a date", () => {
  assert.equal(backoff(0, 1000, 30000, () => 1), 1000);
  assert.equal(backoff(3, 1000, 30000, () => 1), 8000);
  assert.equal(backoff(10, 1000, 30000, () => 1), 30000);
  assert.equal(backoff(1000, 1000, 30000, () => 1), 30000);
  assert.equal(backoff(5, 1000, 30000, () => 0), 0);
  assert.equal(retryAfter("3"), 3000);
  assert.equal(retryAfter(new Date(10_000).toUTCString(), 5_000), 5000);
  assert.equal(retryAfter(null), 0);
  assert.equal(retryAfter("soon"), 0);
});

test("sends the token as a header, never in the URL; resumes with Last-Event-ID after network errors, 5xx and 429", async () => {
  let first;
  const { fetch, requests } = fakeServer([
    () => (first = sse("retry: 5\n\n" + ev("c1", "seller:42", "task.assigned", 1), { keepOpen: true })),
    () => Promise.reject(new TypeError("network down")),
    () => problem(503, { "retry-after": "0" }),
    () => problem(429),
    () => problem(502),
    () => sse(ev("c2", "seller:42", "task.assigned", 2), { keepOpen: true }),
  ]);
  const c = new NotifyClient(opts(fetch));
  const got = [];
  const states = [];
  const errors = [];
  c.on("task.assigned", (n) => got.push(n.data));
  c.onState((s) => states.push(s.status));
  c.onError((e) => errors.push(e.status));
  await until("first event", () => got.length === 1);
  first.end(); // the pod went away
  await until("second event", () => got.length === 2);
  assert.deepEqual(got, [1, 2]);
  assert.equal(c.state.status, "open");
  assert.equal(c.lastEventId, "c2");
  assert.deepEqual(errors, [0, 503, 429, 502]);
  assert.ok(states.includes("retrying"));
  for (const r of requests) {
    assert.equal(r.headers.Authorization, "Bearer tok");
    assert.ok(!r.url.includes("tok"), r.url);
    assert.equal(new URL(r.url).searchParams.getAll("topic").join(), "seller:42");
  }
  assert.equal(requests[0].headers["Last-Event-ID"], undefined);
  for (const r of requests.slice(1)) assert.equal(r.headers["Last-Event-ID"], "c1");
  c.close();
  assert.equal(c.state.status, "stopped");
});

test("honours Retry-After over the backoff", async () => {
  const { fetch, requests } = fakeServer([() => problem(503, { "retry-after": "1" }), () => sse("", { keepOpen: true })]);
  const c = new NotifyClient(opts(fetch));
  let retryIn = 0;
  c.onState((s) => {
    if (s.status === "retrying") retryIn = s.retryAt - Date.now();
  });
  const t0 = Date.now();
  await until("open", () => c.state.status === "open", 4000);
  assert.ok(retryIn > 900, "retrying in " + retryIn + " ms");
  assert.ok(Date.now() - t0 >= 950);
  assert.equal(requests.length, 2);
  c.close();
});

test("stops on 400 and 403, saying why", async () => {
  for (const status of [400, 403]) {
    const { fetch, requests } = fakeServer([() => problem(status)]);
    const c = new NotifyClient(opts(fetch));
    const errors = [];
    c.onError((e) => errors.push(e));
    await until("stopped", () => c.state.status === "stopped");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(requests.length, 1);
    assert.equal(c.state.error.status, status);
    assert.equal(c.state.error.fatal, true);
    assert.match(c.state.error.message, new RegExp("why " + status));
    assert.equal(errors.length, 1);
  }
});

test("a 401 fetches a fresh token and retries at once; a second 401 stops", async () => {
  let tokens = 0;
  const getToken = async () => "t" + ++tokens;
  const a = fakeServer([() => problem(401), () => sse(ev("c1", "seller:42", "x", 1), { keepOpen: true })]);
  const c = new NotifyClient(opts(a.fetch, { getToken }));
  await until("open after a fresh token", () => c.state.status === "open");
  assert.deepEqual(a.requests.map((r) => r.headers.Authorization), ["Bearer t1", "Bearer t2"]);
  c.close();

  const b = fakeServer([() => problem(401)]);
  const d = new NotifyClient(opts(b.fetch, { getToken }));
  await until("stopped", () => d.state.status === "stopped");
  assert.equal(b.requests.length, 2);
  assert.equal(d.state.error.status, 401);
});

test("stream.expired: a fresh token and a reconnect from the cursor, at once; nothing lost or repeated", async () => {
  let tokens = 0;
  const { fetch, requests } = fakeServer([
    () => sse(ev("c1", "seller:42", "x", 1) + ev("c2", "seller:42", "x", 2) + "id: c2\nevent: stream.expired\ndata: {}\n\n"),
    () => sse(ev("c3", "seller:42", "x", 3), { keepOpen: true }),
  ]);
  const c = new NotifyClient(opts(fetch, { getToken: async () => "t" + ++tokens, minDelay: 60000 }));
  const got = [];
  c.on("*", (n) => got.push(n.data));
  await until("event after expiry", () => got.length === 3);
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(requests[1].headers.Authorization, "Bearer t2");
  assert.equal(requests[1].headers["Last-Event-ID"], "c2");
  c.close();
});

test("getToken failing is transient", async () => {
  let n = 0;
  const { fetch } = fakeServer([() => sse("", { keepOpen: true })]);
  const c = new NotifyClient(opts(fetch, { getToken: async () => { if (n++ < 2) throw new Error("auth backend down"); return "tok"; } }));
  await until("open", () => c.state.status === "open");
  assert.equal(n, 3);
  c.close();
});

test("an idle stream (no heartbeat) is reconnected", async () => {
  const { fetch, requests } = fakeServer([() => sse(ev("c1", "seller:42", "x", 1), { keepOpen: true })]);
  const c = new NotifyClient(opts(fetch, { idleTimeout: 50 }));
  await until("a second connect", () => requests.length >= 2);
  assert.equal(requests[1].headers["Last-Event-ID"], "c1");
  c.close();
});

test("listeners by type and by topic; a throwing listener does not break the stream", async () => {
  const { fetch } = fakeServer([() => sse(ev("c1", "seller:42", "a", 1) + ev("c2", "broadcast", "b", 2) + ev("c3", "seller:42", "b", 3), { keepOpen: true })]);
  const c = new NotifyClient(opts(fetch));
  const byType = [];
  const byTopic = [];
  c.on("b", (n) => byType.push(n.data));
  c.onTopic("seller:42", (n) => byTopic.push(n.data));
  const off = c.on("a", () => { throw new Error("app bug"); });
  const reported = [];
  globalThis.reportError = (e) => reported.push(e.message);
  await until("events", () => byType.length === 2 && byTopic.length === 2);
  assert.deepEqual(byType, [2, 3]);
  assert.deepEqual(byTopic, [1, 3]);
  assert.deepEqual(reported, ["app bug"]);
  delete globalThis.reportError;
  off();
  c.close();
});
