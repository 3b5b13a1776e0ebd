import { backoff } from "./backoff.js";
import type { SSEEvent } from "./parser.js";
import { streamEventSource, streamFetch, type Attempt, type Outcome } from "./transport.js";
import { NotifyError, type Envelope, type Options, type Reset, type State } from "./types.js";

type Fn = (...args: any[]) => void;
/** What the leader tab sends its followers. */
type Msg = { e?: SSEEvent; o?: 1; s?: State; h?: 1; y?: Sync };
type Sync = { cursor: string; synced: boolean; states: [string, Envelope[]][]; state: State };

const CONTROL = ["message", "stream.reset", "stream.synced", "stream.expired"];
const SEEN = 5000; // notification keys remembered to drop a repeat after a leader change

// An Error crosses a BroadcastChannel as its message only: send its fields.
const plain = (s: State): State => (s.error ? { ...s, error: { status: s.error.status, message: s.error.message, fatal: s.error.fatal } as NotifyError } : s);

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((done) => {
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      done();
    });
  });

/**
 * NotifyClient holds one Notify stream: it connects, reconnects after any
 * transient failure, resumes by cursor, refreshes the token, folds keyed
 * state, and (with share) lets one tab hold the stream for all tabs of the
 * origin asking for the same one.
 */
export class NotifyClient {
  /** The cursor of the last event received: where a reconnect resumes. */
  lastEventId: string;
  /** True once `stream.synced` arrived (snapshot mode), false again after a `stream.reset` until the next one. */
  synced = false;
  /** True in the tab that holds the connection. */
  leader = false;
  /** Repeats dropped (a leader change can deliver an event twice; the server never does). */
  duplicates = 0;
  state: State = { status: "connecting" };

  private o: Options;
  private urls: string[];
  private ls = new Map<string, Set<Fn>>();
  private states = new Map<string, Map<string, Envelope>>();
  private fresh = new Set<string>(); // topics whose state this connection rebuilt
  private seen = new Set<string>();
  private closing = new AbortController();
  private bc?: BroadcastChannel;
  private joined = false;

  constructor(options: Options) {
    this.o = options;
    this.urls = ([] as string[]).concat(options.url);
    this.lastEventId = options.lastEventId || "";
    const locks = typeof navigator !== "undefined" && (navigator as any).locks;
    if (options.share !== false && locks && typeof BroadcastChannel !== "undefined") {
      const name = "notify:" + JSON.stringify([this.urls, [...(options.topics || [])].sort(), !!options.snapshot]);
      this.bc = new BroadcastChannel(name);
      this.bc.onmessage = (m) => this.follow(m.data);
      locks
        .request(name, { signal: this.closing.signal }, async () => {
          this.leader = this.joined = true;
          await sleep(50, this.closing.signal); // let the last messages of the previous leader arrive
          await this.run();
        })
        .catch(() => {});
      this.post({ h: 1 });
    } else {
      this.leader = this.joined = true;
      this.run();
    }
  }

  /** Listen for notifications of one type, or every notification with "*". Returns an unsubscribe function. */
  on<D = unknown>(type: string, fn: (n: Envelope<D>) => void) {
    return this.sub("t" + type, fn);
  }
  /** Listen for the notifications of one topic. */
  onTopic<D = unknown>(topic: string, fn: (n: Envelope<D>) => void) {
    return this.sub("p" + topic, fn);
  }
  /** `stream.reset`: history was lost for these topics (with snapshot, their state is being rebuilt). */
  onReset(fn: (r: Reset) => void) {
    return this.sub("reset", fn);
  }
  /** `stream.synced`: every topic's state is complete. */
  onSynced(fn: (topics: string[]) => void) {
    return this.sub("synced", fn);
  }
  /** A topic's keyed state changed. */
  onChange(fn: (topic: string, state: Map<string, Envelope>) => void) {
    return this.sub("change", fn);
  }
  /** `stream.expired`: the token ran out; the client reconnects at once with a token from getToken. */
  onExpired(fn: () => void) {
    return this.sub("expired", fn);
  }
  onState(fn: (s: State) => void) {
    return this.sub("state", fn);
  }
  /** Every failure: transient ones (the client retries) and the fatal one (it stops). */
  onError(fn: (e: NotifyError) => void) {
    return this.sub("error", fn);
  }

  /** A topic's keyed state: key → the latest envelope with that key, in the order keys were last updated. */
  topicState(topic: string): Map<string, Envelope> {
    return this.states.get(topic) || new Map();
  }

  /** Stop for good: closes the stream (another tab then takes it over) and ends every timer. */
  close() {
    this.closing.abort();
    this.bc?.close();
    this.leader = false;
    this.setState({ status: "stopped" });
  }

  private sub(k: string, fn: Fn) {
    let s = this.ls.get(k);
    if (!s) this.ls.set(k, (s = new Set()));
    s.add(fn);
    return () => s!.delete(fn);
  }

  private emit(k: string, ...args: unknown[]) {
    this.ls.get(k)?.forEach((fn) => {
      try {
        fn(...args);
      } catch (e) {
        // A listener's bug is reported, and never breaks the stream.
        typeof reportError === "function" ? reportError(e) : setTimeout(() => { throw e; });
      }
    });
  }

  private post(m: Msg) {
    try {
      this.bc?.postMessage(m);
    } catch {
      // closed
    }
  }

  private setState(s: State, local = false) {
    const e: any = s.error; // from another tab: a plain object
    if (local && e && !(e instanceof NotifyError)) s = { ...s, error: new NotifyError(e.status, e.message, e.fatal) };
    this.state = s;
    if (this.leader && !local) this.post({ s: plain(s) });
    this.emit("state", s);
  }

  /** A follower's view of the leader's messages. */
  private follow(m: Msg) {
    if (this.leader) {
      if (m.h) {
        const states: [string, Envelope[]][] = [...this.states].map(([t, s]) => [t, [...s.values()]]);
        this.post({ y: { cursor: this.lastEventId, synced: this.synced, states, state: plain(this.state) } });
      }
      return;
    }
    if (m.y && !this.joined) {
      this.joined = true;
      this.lastEventId = m.y.cursor || this.lastEventId;
      this.synced = m.y.synced;
      for (const [t, es] of m.y.states) {
        this.states.set(t, new Map(es.map((e) => [e.key!, e])));
        this.emit("change", t, this.states.get(t));
      }
      if (this.synced) this.emit("synced", [...this.states.keys()]);
      this.setState(m.y.state, true);
    }
    if (!this.joined) return; // what came before the sync is in it
    if (m.o) this.fresh.clear();
    if (m.e) this.deliver(m.e);
    if (m.s) this.setState(m.s, true);
  }

  /** deliver applies one event of the stream, in the leader as in every follower. */
  private deliver(ev: SSEEvent) {
    let d: any;
    try {
      d = JSON.parse(ev.data);
    } catch {
      d = ev.data;
    }
    if (ev.type === "stream.reset") {
      this.synced = false;
      if (this.o.snapshot) for (const t of d.topics || []) this.rebuild(t);
      this.emit("reset", d);
      return;
    }
    if (ev.type === "stream.synced") {
      this.lastEventId = ev.id;
      this.synced = true;
      this.emit("synced", d.topics || []);
      return;
    }
    if (ev.type === "stream.expired" || !d || typeof d !== "object" || !d.topic) {
      if (ev.hasId) this.lastEventId = ev.id;
      if (ev.type === "stream.expired") this.emit("expired");
      return;
    }
    const env = d as Envelope;
    if (!ev.hasId) {
      // A snapshot entry: the first of its topic in this connection starts the topic's state anew.
      if (!this.fresh.has(env.topic)) this.rebuild(env.topic);
      this.fold(env);
      return;
    }
    const k = env.id + " " + env.topic;
    if (this.seen.has(k)) {
      this.duplicates++;
      return;
    }
    this.seen.add(k);
    if (this.seen.size > SEEN) this.seen.delete(this.seen.values().next().value!);
    this.lastEventId = ev.id;
    if (env.key != null) this.fold(env);
    this.emit("t" + env.type, env);
    this.emit("t*", env);
    this.emit("p" + env.topic, env);
  }

  private rebuild(topic: string) {
    this.fresh.add(topic);
    this.states.set(topic, new Map());
    this.emit("change", topic, this.states.get(topic));
  }

  private fold(env: Envelope) {
    let s = this.states.get(env.topic);
    if (!s) this.states.set(env.topic, (s = new Map()));
    s.delete(env.key!);
    if (env.data !== null) s.set(env.key!, env);
    this.emit("change", env.topic, s);
  }

  /** run is the leader's connection loop: it ends only when the client is closed or a failure is fatal. */
  private async run() {
    const o = this.o;
    const signal = this.closing.signal;
    const f = o.fetch || (typeof fetch !== "undefined" ? fetch.bind(globalThis) : undefined);
    const streams = typeof ReadableStream !== "undefined" && typeof Response !== "undefined" && "body" in Response.prototype;
    const ES = o.EventSource || (typeof EventSource !== "undefined" ? EventSource : undefined);
    let base = o.minDelay ?? 1000;
    const cap = o.maxDelay ?? 30000;
    let attempt = 0; // failures in a row
    let authRetried = false;
    let wait = 0;
    let n = 0; // which base URL
    for (;;) {
      if (wait > 0) {
        this.setState({ status: "retrying", retryAt: Date.now() + wait, error: this.state.error });
        await sleep(wait, signal);
      }
      if (signal.aborted) return;
      this.setState({ status: "connecting", error: this.state.error });
      let token: string;
      try {
        token = await o.getToken();
      } catch (e) {
        this.fail(new NotifyError(0, "getToken failed: " + e));
        wait = Math.max(backoff(attempt++, base, cap, o.random), base);
        continue;
      }
      if (signal.aborted) return;
      const q = new URLSearchParams();
      for (const t of o.topics || []) q.append("topic", t);
      if (o.snapshot) q.set("snapshot", "true");
      const qs = q.toString();
      let expired = false;
      const a: Attempt = {
        url: this.urls[n % this.urls.length].replace(/\/+$/, "") + "/v1/stream" + (qs ? "?" + qs : ""),
        token,
        cursor: this.lastEventId,
        idleTimeout: o.idleTimeout ?? 45000,
        signal,
        onOpen: () => {
          attempt = 0;
          authRetried = false;
          this.fresh.clear();
          this.post({ o: 1 });
          this.setState({ status: "open" });
        },
        onEvent: (ev) => {
          if (ev.type === "stream.expired") expired = true;
          this.deliver(ev);
          this.post({ e: ev });
        },
        onRetry: (ms) => (base = ms),
      };
      const types = [...CONTROL, ...[...this.ls.keys()].filter((k) => k[0] === "t" && k !== "t*").map((k) => k.slice(1))];
      const out: Outcome = f && streams ? await streamFetch(f, a) : ES ? await streamEventSource(ES, a, types) : { opened: false, status: 0, after: 0, detail: "no fetch streaming and no EventSource" };
      if (signal.aborted) return;
      const s = out.status;
      if (expired) {
        wait = 0; // a fresh token, at once
      } else if (s === 401 && !authRetried) {
        authRetried = true;
        wait = 0;
        this.fail(new NotifyError(s, out.detail));
      } else if (s === 400 || s === 401 || s === 403 || (!f && !ES)) {
        this.fail(new NotifyError(s, out.detail, true));
        return;
      } else {
        if (!out.opened) n++;
        wait = Math.max(out.after, backoff(out.opened ? 0 : attempt++, base, cap, o.random));
        if (!out.opened || out.detail !== "the stream ended") this.fail(new NotifyError(s, out.detail));
      }
    }
  }

  private fail(e: NotifyError) {
    this.state = { ...this.state, error: e };
    this.emit("error", e);
    if (e.fatal) this.setState({ status: "stopped", error: e });
  }
}
