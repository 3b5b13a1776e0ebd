import { test } from "node:test";
import assert from "node:assert/strict";
import { createParser } from "../dist/index.js";

// parse feeds the chunks in order and returns the events and retry values.
function parse(...chunks) {
  const events = [];
  const retries = [];
  const feed = createParser((e) => events.push(e), (ms) => retries.push(ms));
  for (const c of chunks) feed(c);
  return { events, retries };
}

test("fields, default type, dispatch on a blank line", () => {
  const { events } = parse("id: 1\nevent: task.assigned\ndata: {\"a\":1}\n\ndata: plain\n\n");
  assert.deepEqual(events, [
    { type: "task.assigned", data: '{"a":1}', id: "1", hasId: true },
    { type: "message", data: "plain", id: "1", hasId: false },
  ]);
});

test("CR, LF and CRLF line ends, also split across chunks", () => {
  const want = [
    { type: "a", data: "x", id: "", hasId: false },
    { type: "b", data: "y", id: "", hasId: false },
    { type: "c", data: "z", id: "", hasId: false },
  ];
  assert.deepEqual(parse("event: a\rdata: x\r\revent: b\ndata: y\n\nevent: c\r\ndata: z\r\n\r\n").events, want);
  assert.deepEqual(parse("event: a\r", "data: x\r", "\revent: b\r", "\ndata: y\r\n", "\r", "\nevent: c\r\ndata: z\r\n\r\n").events, want);
  // Every split point of the same stream gives the same events.
  const s = "event: a\r\ndata: x\r\n\r\nevent: b\rdata: y\r\revent: c\ndata: z\n\n";
  for (let i = 0; i <= s.length; i++) assert.deepEqual(parse(s.slice(0, i), s.slice(i)).events, want, `split at ${i}`);
});

test("a leading BOM is dropped, once", () => {
  assert.deepEqual(parse("\uFEFFdata: a\n\n").events[0].data, "a");
  assert.deepEqual(parse("\uFEFF", "data: a\n\n").events[0].data, "a");
  const { events } = parse("data: a\n\n\uFEFFdata: b\n\n");
  assert.equal(events.length, 1, "a BOM later is part of a field name");
});

test("comments, unknown fields and a field without a colon", () => {
  const { events } = parse(": heartbeat\n\nfoo: bar\ndata\n\ndata:no-space\ndata:  two\n\n");
  assert.deepEqual(events.map((e) => e.data), ["", "no-space\n two"]);
});

test("multi-line data, and no event without data", () => {
  const { events } = parse("data: a\ndata: b\ndata:\n\nevent: x\n\nid: 7\n\ndata: c\n\n");
  assert.deepEqual(events.map((e) => [e.type, e.data, e.id]), [["message", "a\nb\n", ""], ["message", "c", "7"]]);
});

test("id: the buffer persists, a NUL makes the field ignored, an empty one clears it", () => {
  const { events } = parse("id: 5\ndata: a\n\nid: 6\u00007\ndata: b\n\nid\ndata: c\n\n");
  assert.deepEqual(events.map((e) => [e.id, e.hasId]), [["5", true], ["5", false], ["", true]]);
});

test("retry: only ASCII digits count", () => {
  assert.deepEqual(parse("retry: 2000\n\nretry: 1.5\nretry: x\nretry: 300\n\n").retries, [2000, 300]);
});

test("an unfinished event at the end is not dispatched", () => {
  assert.deepEqual(parse("data: a\n\ndata: b\n").events.length, 1);
});

test("chunks split inside a field and across UTF-8 text", () => {
  const { events } = parse("da", "ta: h\u00e9", "llo\n", "\n");
  assert.equal(events[0].data, "h\u00e9llo");
});
