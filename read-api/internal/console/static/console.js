// Notify live console: one EventSource, a deduplicated event log and a
// board with the latest event per topic. No dependencies, no build step.
'use strict';
(() => {
  const MAX_ROWS = 500;       // log rows kept in the page
  const MAX_SEEN = 20000;     // notification keys remembered for dedupe
  const MAX_DELAY = 15000;    // cap of the manual reconnect backoff, ms
  const CONTROL = ['stream.reset', 'stream.expired'];

  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $('connect-form'), token: $('token'), topics: $('topics'), types: $('types'), urls: $('urls'),
    connect: $('connect'), disconnect: $('disconnect'), claims: $('claims'), banner: $('banner'),
    state: $('state'), reconnects: $('reconnects'), count: $('count'), dupes: $('dupes'), cursor: $('cursor'),
    board: $('board'), log: $('log'),
  };

  let conn = null;      // {token, topics, types, urls} of the current Connect
  let es = null;        // the live EventSource, if any
  let timer = 0;        // pending manual reconnect
  let attempt = 0;      // failed attempts in a row
  let urlIndex = 0;     // which base URL the next connection uses
  let opens = 0;        // successful opens since Connect
  let cursor = '';      // lastEventId of the last event: where a reconnect resumes
  let cursorKey = null; // the topic set the cursor belongs to
  let reconnects = 0, count = 0, dupes = 0;
  const seen = new Set();
  const cards = new Map();
  const listening = new Set();

  const store = {
    get: (k) => { try { return localStorage.getItem('notify.console.' + k) || ''; } catch { return ''; } },
    set: (k, v) => { try { localStorage.setItem('notify.console.' + k, v); } catch { /* private mode */ } },
  };
  const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

  function claimsOf(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part + '='.repeat((4 - part.length % 4) % 4)));
    } catch {
      return null;
    }
  }

  function showClaims() {
    const token = ui.token.value.trim();
    if (!token) { ui.claims.textContent = ''; return; }
    const c = claimsOf(token);
    if (!c) { ui.claims.textContent = 'not a JWT'; return; }
    const left = c.exp ? Math.round((c.exp * 1000 - Date.now()) / 60000) : null;
    ui.claims.textContent = [
      'sub ' + (c.sub || '?'),
      'topics ' + (Array.isArray(c.topics) ? c.topics.join(', ') : '–'),
      left === null ? 'no exp' : left > 0 ? 'expires in ' + left + ' min' : 'EXPIRED',
    ].join(' · ');
  }

  function tokenExpired(token) {
    const c = claimsOf(token);
    return !!(c && c.exp && c.exp * 1000 <= Date.now());
  }

  function setState(s) {
    ui.state.textContent = s;
    ui.state.dataset.state = s;
    ui.disconnect.disabled = !(es || timer);
  }

  function banner(kind, text) {
    if (!kind) { ui.banner.hidden = true; ui.banner.textContent = ''; delete ui.banner.dataset.kind; return; }
    ui.banner.hidden = false;
    ui.banner.dataset.kind = kind;
    ui.banner.textContent = text;
  }

  function streamURL() {
    const base = conn.urls[urlIndex % conn.urls.length].replace(/\/+$/, '');
    const q = new URLSearchParams();
    for (const t of conn.topics) q.append('topic', t);
    q.set('access_token', conn.token);
    if (cursor) q.set('lastEventId', cursor);
    return base + '/v1/stream?' + q.toString();
  }

  function connect() {
    const token = ui.token.value.trim();
    if (!token) {
      ui.token.classList.add('attention');
      banner('error', 'Paste a subscriber token first.');
      return;
    }
    stop();
    conn = { token, topics: list(ui.topics.value), types: list(ui.types.value), urls: list(ui.urls.value) };
    if (conn.urls.length === 0) conn.urls = [''];
    store.set('token', token);
    store.set('topics', ui.topics.value);
    store.set('types', ui.types.value);
    store.set('urls', ui.urls.value);
    const key = conn.topics.join(',');
    if (cursorKey !== null && cursorKey !== key) setCursor(''); // that cursor covers other topics
    cursorKey = key;
    ui.token.classList.remove('attention');
    banner(null);
    showClaims();
    opens = 0;
    attempt = 0;
    open();
  }

  function stop() {
    clearTimeout(timer);
    timer = 0;
    if (es) es.close();
    es = null;
  }

  function open() {
    timer = 0;
    const src = new EventSource(streamURL());
    es = src;
    listening.clear();
    setState(opens ? 'reconnecting' : 'connecting');
    src.onopen = () => {
      if (es !== src) return;
      opens++;
      if (opens > 1) ui.reconnects.textContent = String(++reconnects);
      attempt = 0;
      setState('open');
    };
    src.onerror = () => {
      if (es !== src) return;
      // One URL and the browser retrying by itself (sending Last-Event-ID):
      // let it. Otherwise take over: next URL, backoff with jitter.
      if (src.readyState === EventSource.CONNECTING && conn.urls.length === 1) {
        setState('reconnecting');
        return;
      }
      src.close();
      es = null;
      retryLater();
    };
    listen(['message', ...CONTROL, ...conn.types]);
  }

  function listen(types) {
    if (!es) return;
    for (const t of types) {
      if (listening.has(t)) continue;
      listening.add(t);
      es.addEventListener(t, onEvent);
    }
  }

  function retryLater() {
    if (tokenExpired(conn.token)) { expired('the token expired while reconnecting'); return; }
    attempt++;
    urlIndex++;
    const delay = Math.min(MAX_DELAY, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
    timer = setTimeout(open, delay);
    setState('reconnecting');
  }

  function expired(why) {
    stop();
    setState('expired');
    banner('expired', 'Token expired (' + why + '). Paste a fresh token and press Connect: the console resumes from the last cursor.');
    ui.token.classList.add('attention');
    ui.token.focus();
  }

  function setCursor(id) {
    cursor = id;
    ui.cursor.textContent = id || '–';
    ui.cursor.title = id ? 'lastEventId ' + id : 'lastEventId';
  }

  function onEvent(ev) {
    if (ev.target !== es) return;
    if (ev.lastEventId) setCursor(ev.lastEventId);
    let data;
    try { data = JSON.parse(ev.data); } catch { data = ev.data; }
    if (ev.type === 'stream.reset') {
      const topics = data && Array.isArray(data.topics) ? data.topics.join(', ') : '?';
      const reason = data && data.reason ? data.reason : 'unknown';
      banner('reset', 'Stream reset for ' + topics + ' (' + reason + '): events from before may be missing; continuing live.');
      addRow({ type: ev.type, topic: topics, data }, true);
      return;
    }
    if (ev.type === 'stream.expired') {
      addRow({ type: ev.type, topic: '', data }, true);
      expired('stream.expired');
      return;
    }
    const env = data && typeof data === 'object' && data.id ? data : { type: ev.type, topic: '', data };
    if (env.id) {
      const key = env.id + ' ' + env.topic; // one notification may name several topics
      if (seen.has(key)) { ui.dupes.textContent = String(++dupes); return; }
      seen.add(key);
      if (seen.size > MAX_SEEN) seen.delete(seen.values().next().value);
    }
    ui.count.textContent = String(++count);
    addRow(env, false);
    updateBoard(env);
  }

  function clock(t) {
    const d = t ? new Date(t) : new Date();
    return isNaN(d) ? '' : d.toLocaleTimeString([], { hour12: false });
  }

  function span(cls, text, title) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    if (title) s.title = title;
    return s;
  }

  function addRow(env, control) {
    const li = document.createElement('li');
    if (control) li.className = 'control';
    if (env.id) li.dataset.id = env.id;
    li.dataset.topic = env.topic || '';
    li.dataset.type = env.type || '';
    const payload = JSON.stringify(env.data);
    li.append(span('time', clock(env.time)), span('topic', env.topic || '—', env.topic),
      span('type', env.type || 'message'), span('data', payload, payload));
    ui.log.prepend(li);
    while (ui.log.childElementCount > MAX_ROWS) ui.log.lastElementChild.remove();
  }

  function updateBoard(env) {
    const topic = env.topic || '(none)';
    let card = cards.get(topic);
    if (!card) {
      if (cards.size === 0) ui.board.replaceChildren();
      card = document.createElement('div');
      card.className = 'card';
      card.dataset.topic = topic;
      cards.set(topic, card);
      ui.board.append(card);
    }
    card.dataset.id = env.id || '';
    card.dataset.type = env.type || '';
    card.replaceChildren(span('topic', topic), span('type', env.type || 'message'),
      span('data', JSON.stringify(env.data)), span('time', clock(env.time) + (env.id ? ' · ' + env.id.slice(-8) : '')));
    card.classList.remove('fresh');
    void card.offsetWidth; // restart the highlight animation
    card.classList.add('fresh');
  }

  function init() {
    const frag = new URLSearchParams(location.hash.slice(1));
    const pick = (k) => (frag.has(k) ? frag.get(k) : store.get(k));
    ui.token.value = pick('token');
    ui.topics.value = pick('topics');
    ui.types.value = pick('types');
    ui.urls.value = pick('urls');
    if (location.hash) history.replaceState(null, '', location.pathname + location.search); // keep the token out of the address bar
    ui.form.addEventListener('submit', (e) => { e.preventDefault(); connect(); });
    ui.disconnect.addEventListener('click', () => { stop(); conn = null; setState('closed'); });
    ui.token.addEventListener('input', showClaims);
    ui.types.addEventListener('change', () => { if (conn) { conn.types = list(ui.types.value); listen(conn.types); } });
    showClaims();
    setState('idle');
    if (frag.get('token')) connect();
  }

  init();
})();
