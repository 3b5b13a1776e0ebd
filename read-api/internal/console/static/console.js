// Notify live console: a stream through the Notify browser client
// (notify-client.js, built from clients/js), a deduplicated event log and a
// board: the latest event per topic or, with a snapshot, each topic's keyed
// state (key → latest value) as the client folds it. No other dependencies.
import { NotifyClient } from './notify-client.js';

(() => {
  const MAX_ROWS = 500; // log rows kept in the page

  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $('connect-form'), token: $('token'), topics: $('topics'), types: $('types'), urls: $('urls'), snapshot: $('snapshot'),
    connect: $('connect'), disconnect: $('disconnect'), claims: $('claims'), banner: $('banner'),
    state: $('state'), reconnects: $('reconnects'), count: $('count'), dupes: $('dupes'), cursor: $('cursor'),
    board: $('board'), boardNote: $('board-note'), synced: $('synced'), syncedStat: $('synced-stat'), log: $('log'),
  };

  let conn = null;      // {token, topics, types, urls, snapshot} of the current Connect
  let client = null;    // the NotifyClient of the current Connect
  let opens = 0;        // successful opens since Connect
  let cursor = '';      // lastEventId of the last event: where a Connect resumes
  let cursorKey = null; // the topic set the cursor belongs to
  let reconnects = 0, count = 0;
  let ticker = 0;       // refreshes "retrying in N s"
  const cards = new Map();

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

  function setState(s, text) {
    ui.state.textContent = text || s;
    ui.state.dataset.state = s;
    ui.disconnect.disabled = !client;
  }

  function banner(kind, text) {
    if (!kind) { ui.banner.hidden = true; ui.banner.textContent = ''; delete ui.banner.dataset.kind; return; }
    ui.banner.hidden = false;
    ui.banner.dataset.kind = kind;
    ui.banner.textContent = text;
  }

  // The client's state, as the page shows it.
  function onState(st) {
    clearInterval(ticker);
    if (st.status === 'open') {
      if (++opens > 1) ui.reconnects.textContent = String(++reconnects);
      if (ui.banner.dataset.kind === 'error') banner(null);
      setState('open');
    } else if (st.status === 'retrying') {
      const show = () => setState('retrying', 'retrying in ' + Math.max(0, Math.ceil((st.retryAt - Date.now()) / 1000)) + ' s');
      show();
      ticker = setInterval(show, 500);
    } else if (st.status === 'connecting') {
      if (ui.state.dataset.state !== 'expired') setState(opens ? 'reconnecting' : 'connecting');
    } else if (client && st.error) {
      setState('stopped');
      banner('error', 'Stopped: ' + st.error.message + '. Fix the token or topics and press Connect.');
    }
  }

  function connect() {
    const token = ui.token.value.trim();
    if (!token) {
      ui.token.classList.add('attention');
      banner('error', 'Paste a subscriber token first.');
      return;
    }
    stop();
    conn = { token, topics: list(ui.topics.value), types: list(ui.types.value), urls: list(ui.urls.value), snapshot: ui.snapshot.checked };
    store.set('token', token);
    store.set('topics', ui.topics.value);
    store.set('types', ui.types.value);
    store.set('urls', ui.urls.value);
    store.set('snapshot', conn.snapshot ? 'true' : '');
    const key = conn.topics.join(',');
    if (cursorKey !== null && cursorKey !== key) setCursor(''); // that cursor covers other topics
    cursorKey = key;
    ui.token.classList.remove('attention');
    banner(null);
    showClaims();
    opens = 0;
    resetBoard(conn.snapshot);
    const c = new NotifyClient({
      url: conn.urls.length ? conn.urls : location.origin,
      topics: conn.topics,
      // A snapshot is the whole current state: it starts the board afresh. A
      // cursor would replay only what was missed into an empty board.
      lastEventId: conn.snapshot ? '' : cursor,
      snapshot: conn.snapshot,
      share: false, // each console tab connects on its own, with its own token
      getToken: () => (tokenExpired(conn.token) ? waitForToken() : conn.token),
    });
    client = c;
    c.onState((st) => { if (client === c) onState(st); });
    c.on('*', (env) => { if (client === c) onEvent(env); });
    c.onReset((r) => { if (client === c) onReset(r); });
    c.onChange((topic, state) => { if (client === c) renderState(topic, state); });
    c.onSynced((topics) => {
      if (client !== c) return;
      setSynced(true);
      for (const t of topics) if (!cards.has(t)) renderState(t, c.topicState(t)); // topics without keys
    });
    c.onExpired(() => { if (client === c) addRow({ type: 'stream.expired', topic: '', data: {} }, true); });
    setState('connecting');
  }

  // A token that expired: the stream waits (resuming from its cursor) until
  // Connect brings a fresh one.
  function waitForToken() {
    setState('expired');
    banner('expired', 'Token expired. Paste a fresh token and press Connect: the console resumes from the last cursor.');
    ui.token.classList.add('attention');
    ui.token.focus();
    return new Promise(() => {}); // Connect replaces this client
  }

  function stop() {
    clearInterval(ticker);
    if (client) client.close();
    client = null;
  }

  function setCursor(id) {
    cursor = id;
    ui.cursor.textContent = id || '–';
    ui.cursor.title = id ? 'lastEventId ' + id : 'lastEventId';
  }

  function onReset(r) {
    const topics = Array.isArray(r.topics) ? r.topics.join(', ') : '?';
    banner('reset', 'Stream reset for ' + topics + ' (' + (r.reason || 'unknown') + '): events from before may be missing; continuing live.');
    addRow({ type: 'stream.reset', topic: topics, data: r }, true);
    if (conn.snapshot) setSynced(false); // the client rebuilds those topics' state from the snapshot that follows
  }

  function onEvent(env) {
    setCursor(client.lastEventId);
    ui.dupes.textContent = String(client.duplicates);
    if (conn.types.length && !conn.types.includes(env.type)) return;
    ui.count.textContent = String(++count);
    addRow(env, false);
    if (!conn.snapshot) updateBoard(env);
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

  // resetBoard empties the board for a Connect; with a snapshot it fills
  // again from the snapshot the stream starts with.
  function resetBoard(keyed) {
    if (keyed || ui.board.classList.contains('keyed')) {
      cards.clear();
      ui.board.replaceChildren(span('empty', keyed ? 'Waiting for the snapshot…' : 'No events yet.'));
    }
    ui.board.classList.toggle('keyed', keyed);
    ui.boardNote.textContent = keyed ? 'keyed state per topic: key → latest value' : 'latest event per topic';
    ui.syncedStat.hidden = !keyed;
    setSynced(false);
  }

  function setSynced(on) {
    ui.synced.dataset.synced = String(on);
    ui.synced.textContent = on ? 'synced' : 'syncing';
  }

  function cardFor(topic) {
    let card = cards.get(topic);
    if (!card) {
      if (cards.size === 0) ui.board.replaceChildren();
      card = document.createElement('div');
      card.className = 'card';
      card.dataset.topic = topic;
      cards.set(topic, card);
      ui.board.append(card);
    }
    return card;
  }

  function cell(cls, text) {
    const td = document.createElement('td');
    td.className = cls;
    td.textContent = text;
    td.title = text;
    return td;
  }

  // renderState draws a topic's keyed state: one row per key, sorted by key;
  // a row whose value changed is highlighted, a removed key is gone.
  function renderState(topic, state) {
    const card = cardFor(topic);
    const before = new Map(Array.from(card.querySelectorAll('tr[data-key]'), (tr) => [tr.dataset.key, tr.dataset.id]));
    const rows = [...state.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((env) => {
      const tr = document.createElement('tr');
      tr.dataset.key = env.key;
      tr.dataset.id = env.id || '';
      tr.dataset.type = env.type || '';
      if (before.size && before.get(env.key) !== tr.dataset.id) tr.className = 'fresh';
      tr.append(cell('key', env.key), cell('type', env.type || 'message'), cell('time', clock(env.time)), cell('data', JSON.stringify(env.data)));
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement('tr');
      tr.className = 'nokeys';
      const td = cell('data', 'no keys');
      td.colSpan = 4;
      tr.append(td);
      rows.push(tr);
    }
    const head = document.createElement('tr');
    for (const h of ['key', 'type', 'time', 'data']) {
      const th = document.createElement('th');
      th.textContent = h;
      head.append(th);
    }
    const table = document.createElement('table');
    table.append(document.createElement('thead'), document.createElement('tbody'));
    table.tHead.append(head);
    table.tBodies[0].append(...rows);
    card.dataset.keys = String(state.size);
    card.replaceChildren(span('topic', topic), table);
  }

  function updateBoard(env) {
    const topic = env.topic || '(none)';
    const card = cardFor(topic);
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
    ui.snapshot.checked = ['true', '1', 'on'].includes(pick('snapshot'));
    if (location.hash) history.replaceState(null, '', location.pathname + location.search); // keep the token out of the address bar
    ui.form.addEventListener('submit', (e) => { e.preventDefault(); connect(); });
    ui.disconnect.addEventListener('click', () => { stop(); conn = null; setState('closed'); });
    ui.token.addEventListener('input', showClaims);
    ui.types.addEventListener('change', () => { if (conn) conn.types = list(ui.types.value); });
    showClaims();
    setState('idle');
    if (frag.get('token')) connect();
  }

  init();
})();
