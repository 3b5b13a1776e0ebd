import { createParser, type SSEEvent } from "./parser.js";
import { retryAfter } from "./backoff.js";

/** How one connection attempt ended. */
export interface Outcome {
  /** Whether the stream opened (200, text/event-stream). */
  opened: boolean;
  /** The HTTP status of a refused connect; 0 for a network error or a stream that ended. */
  status: number;
  /** Retry-After of a refused connect, ms. */
  after: number;
  /** Why, in words (the problem's detail when the server sent one). */
  detail: string;
}

export interface Attempt {
  url: string;
  token: string;
  cursor: string;
  idleTimeout: number;
  signal: AbortSignal;
  onOpen(): void;
  onEvent(ev: SSEEvent): void;
  onRetry(ms: number): void;
}

/** streamFetch opens the stream with fetch: Authorization and Last-Event-ID headers, nothing secret in the URL. */
export async function streamFetch(f: typeof fetch, a: Attempt): Promise<Outcome> {
  const headers: Record<string, string> = { Authorization: "Bearer " + a.token, Accept: "text/event-stream" };
  if (a.cursor) headers["Last-Event-ID"] = a.cursor;
  let res: Response;
  try {
    res = await f(a.url, { headers, cache: "no-store", signal: a.signal });
  } catch (e) {
    return { opened: false, status: 0, after: 0, detail: "network error: " + e };
  }
  if (res.status !== 200 || !(res.headers.get("content-type") || "").startsWith("text/event-stream") || !res.body) {
    let detail = "HTTP " + res.status;
    try {
      const p = JSON.parse(await res.text());
      if (p.detail || p.title) detail += ": " + (p.detail || p.title);
    } catch {
      // not a problem+json body
    }
    return { opened: false, status: res.status, after: retryAfter(res.headers.get("retry-after")), detail };
  }
  a.onOpen();
  const feed = createParser(a.onEvent, a.onRetry);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let idle: ReturnType<typeof setTimeout> | undefined;
  const watch = () => {
    clearTimeout(idle);
    if (a.idleTimeout > 0) idle = setTimeout(() => reader.cancel().catch(() => {}), a.idleTimeout);
  };
  const stop = () => reader.cancel().catch(() => {});
  a.signal.addEventListener("abort", stop);
  let detail = "the stream ended";
  try {
    for (watch(); ; watch()) {
      const { value, done } = await reader.read();
      if (done) break;
      feed(decoder.decode(value, { stream: true }));
    }
  } catch (e) {
    detail = "the stream broke: " + e;
  } finally {
    clearTimeout(idle);
    a.signal.removeEventListener("abort", stop);
  }
  return { opened: true, status: 0, after: 0, detail };
}

/**
 * streamEventSource is the fallback where fetch cannot stream: the token and
 * cursor go in the query (access_token, lastEventId), and only the named
 * types given are received (EventSource has no wildcard). It never lets the
 * browser retry by itself: the caller decides, with a fresh token.
 */
export function streamEventSource(ES: typeof EventSource, a: Attempt, types: string[]): Promise<Outcome> {
  const u = new URL(a.url);
  u.searchParams.set("access_token", a.token);
  if (a.cursor) u.searchParams.set("lastEventId", a.cursor);
  return new Promise((resolve) => {
    const es = new ES(u.toString());
    let opened = false;
    const end = () => {
      es.close();
      resolve({ opened, status: 0, after: 0, detail: opened ? "the stream ended" : "connect failed" });
    };
    a.signal.addEventListener("abort", end);
    es.onopen = () => {
      opened = true;
      a.onOpen();
    };
    es.onerror = end;
    // In one EventSource the id buffer starts empty, so an event before the
    // first id (a snapshot entry) has lastEventId "".
    const on = (e: MessageEvent) => a.onEvent({ type: e.type, data: e.data, id: e.lastEventId, hasId: e.lastEventId !== "" });
    for (const t of types) es.addEventListener(t, on as EventListener);
  });
}
