/** A notification as the stream delivers it. */
export interface Envelope<D = unknown> {
  /** The notification id (the same in every topic it was published to). */
  id: string;
  topic: string;
  type: string;
  /** Present when the notification was published with a key: it is then that key's state in its topic. */
  key?: string;
  /** RFC 3339 publish time. */
  time: string;
  data: D;
}

/** `stream.reset`: history since the cursor is gone for these topics. */
export interface Reset {
  topics: string[];
  reason: string;
}

/** What the connection is doing, for the app to show. */
export interface State {
  status: "connecting" | "open" | "retrying" | "stopped";
  /** While retrying: when the next attempt starts (epoch ms). */
  retryAt?: number;
  /** The failure that caused retrying or stopped. */
  error?: NotifyError;
}

/** A failed connect or a stream that broke. */
export class NotifyError extends Error {
  /** The HTTP status, 0 for a network error, a stream that broke, or getToken failing. */
  readonly status: number;
  /** True when the client stopped for good (400, 403, 401 twice). */
  readonly fatal: boolean;
  constructor(status: number, message: string, fatal = false) {
    super(message);
    this.name = "NotifyError";
    this.status = status;
    this.fatal = fatal;
  }
}

export interface Options {
  /** Base URL of the read API (e.g. "https://notify.example.com"), or several, tried in turn after failures. */
  url: string | string[];
  /** Topics of the stream; none means every topic of the token's `topics` claim. `broadcast` always comes. */
  topics?: string[];
  /** Returns a subscriber token. Called before every connect, so after `stream.expired` or a 401 it must return a fresh one. */
  getToken: () => string | Promise<string>;
  /** Ask for each topic's keyed state first (`snapshot=true`); `state(topic)` then holds it, `synced` tells when it is complete. */
  snapshot?: boolean;
  /** One connection for all tabs of this origin asking for the same stream (default true where Web Locks and BroadcastChannel exist). */
  share?: boolean;
  /** Resume from this cursor (a stream id, or a history `head`). */
  lastEventId?: string;
  /** Base of the reconnect backoff, ms (default 1000; the stream's `retry:` replaces it). */
  minDelay?: number;
  /** Cap of the reconnect backoff, ms (default 30000). */
  maxDelay?: number;
  /** A stream silent this long (no event, no heartbeat) is reconnected, ms (default 45000, 0 = never). */
  idleTimeout?: number;
  /** For tests: replacements of the globals. */
  fetch?: typeof fetch;
  EventSource?: typeof EventSource;
  random?: () => number;
}
