export { NotifyClient } from "./client.js";
export { NotifyError, type Envelope, type Options, type Reset, type State } from "./types.js";
export { createParser, type SSEEvent } from "./parser.js";
export { backoff, retryAfter } from "./backoff.js";
