/** One dispatched event, as the WHATWG EventSource processing model builds it. */
export interface SSEEvent {
  /** `event:` field, or "message". */
  type: string;
  /** `data:` lines joined with LF. */
  data: string;
  /** The last event ID buffer at dispatch (it persists across events of a stream). */
  id: string;
  /** Whether this event carried its own `id:` field. Notify's snapshot entries do not. */
  hasId: boolean;
}

/**
 * createParser returns a function fed with decoded text chunks, in order; it
 * calls onEvent for each dispatched event and onRetry for each valid `retry:`.
 * Lines end with CR, LF or CRLF (a CR at the end of a chunk waits for the
 * next); a leading BOM is dropped; comments are ignored; an `id` with NUL is
 * ignored; events dispatch on a blank line; an unfinished event at the end of
 * the stream is never dispatched.
 */
export function createParser(onEvent: (ev: SSEEvent) => void, onRetry: (ms: number) => void = () => {}) {
  let buf = "";
  let first = true;
  let skipLF = false;
  let data = "";
  let hasData = false;
  let type = "";
  let id = "";
  let hasId = false;

  const line = (l: string) => {
    if (l === "") {
      if (hasData) onEvent({ type: type || "message", data, id, hasId });
      data = "";
      hasData = false;
      type = "";
      hasId = false;
      return;
    }
    const c = l.indexOf(":");
    if (c === 0) return; // comment
    const field = c < 0 ? l : l.slice(0, c);
    let value = c < 0 ? "" : l.slice(c + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "data") {
      data = hasData ? data + "\n" + value : value;
      hasData = true;
    } else if (field === "event") type = value;
    else if (field === "id") {
      if (!value.includes("\0")) {
        id = value;
        hasId = true;
      }
    } else if (field === "retry" && /^\d+$/.test(value)) onRetry(+value);
  };

  return (chunk: string) => {
    if (first && chunk) {
      first = false;
      if (chunk[0] === "\uFEFF") chunk = chunk.slice(1);
    }
    if (skipLF && chunk[0] === "\n") chunk = chunk.slice(1);
    skipLF = false;
    buf += chunk;
    let start = 0;
    for (;;) {
      const cr = buf.indexOf("\r", start);
      const lf = buf.indexOf("\n", start);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      line(buf.slice(start, end));
      start = end + 1;
      if (buf[end] === "\r") {
        if (start === buf.length) skipLF = true;
        else if (buf[start] === "\n") start++;
      }
    }
    buf = buf.slice(start);
  };
}
