// EmoStream dashboard. Plain JavaScript, no libraries: the page must work
// offline from the binary alone.
(() => {
  'use strict';

  const body = document.body;
  const cfg = {
    windowMs: Number(body.dataset.windowMs) || 2000,
    graceMs: Number(body.dataset.graceMs) || 0,
    scale: Number(body.dataset.scale) || 1000,
  };
  const WINDOWS = 60;          // windows on the chart
  const SERIES = 8;            // lines on the chart
  const MINUTE = 60000;
  const MAX_FLOATING = 18;     // emojis in the air at once: the lane stays readable
  const MAX_PER_RESULT = 8;    // bursts drawn for one result
  const MAX_QUEUED = 60;       // bursts waiting for their turn; older ones are dropped
  const LAUNCH_EVERY = 160;    // ms between two launches
  const RETRY_MIN = 1000;      // ms, first reconnect delay; doubles per failure
  const RETRY_MAX = 30000;     // ms, longest reconnect delay (before jitter)
  const STEADY = 10000;        // ms a stream must last for the backoff to start over
  const IDLE_AFTER = 10000;    // ms without a live result before the page shows how to send one
  const HISTORY = 2000;        // results fetched on (re)connect
  const PALETTE = ['#ff6b6b', '#ffd93d', '#5ee08a', '#4d96ff', '#c77dff', '#ff9f1c', '#2ec4b6', '#f15bb5'];
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const results = new Map();   // "start|end|emoji" -> result; duplicates after a restart are dropped
  const latencies = [];        // ms, last 100 live results
  let newestStart = -Infinity;
  let floating = 0;
  const colors = new Map();    // emoji -> colour, stable while it stays on the chart

  // Tests and curious people read this.
  // connects counts streams opened, refused the 503s (too many viewers),
  // retries the reconnects scheduled; status mirrors the status badge.
  const state = window.emostream = {
    results: 0, live: 0, burstsSpawned: 0, latencyMs: null, rendered: 0,
    connects: 0, refused: 0, retries: 0, status: 'connecting', lastLive: 0,
  };

  const $ = (id) => document.getElementById(id);
  const fmt = (n) => Math.round(n).toLocaleString('en-US');

  function isResult(r) {
    return r && typeof r.emoji_type === 'string' && Number.isFinite(r.window_start) &&
      Number.isFinite(r.window_end) && Number.isFinite(r.count) && Number.isFinite(r.bursts);
  }

  function add(r, live) {
    if (!isResult(r)) return;
    const key = r.window_start + '|' + r.window_end + '|' + r.emoji_type;
    if (results.has(key)) return;
    results.set(key, r);
    state.results++;
    if (r.window_start > newestStart) newestStart = r.window_start;
    if (live) {
      state.live++;
      const ms = Date.now() - (r.window_end + cfg.graceMs);
      latencies.push(ms);
      if (latencies.length > 100) latencies.shift();
      state.latencyMs = ms;
      state.lastLive = Date.now();
      burst(r);
    }
    scheduleRender();
  }

  // ---- bursts -----------------------------------------------------------

  // Results arrive in clumps (every emoji of a window closes at once), so
  // bursts wait in a queue and launch one at a time: a steady stream reads
  // better than a wall of emojis, and the page stays smooth.
  const queue = [];

  function burst(r) {
    const n = Math.min(Math.max(r.bursts, 0), MAX_PER_RESULT);
    for (let i = 0; i < n; i++) queue.push(r.emoji_type);
    if (queue.length > MAX_QUEUED) queue.splice(0, queue.length - MAX_QUEUED);
  }

  function launch() {
    if (queue.length === 0 || floating >= MAX_FLOATING) return;
    const emoji = queue.shift();
    const el = document.createElement('span');
    el.className = 'burst';
    el.textContent = emoji;
    el.dataset.emoji = emoji;
    // Bursts rise in their own lane (see app.css), never over the figures.
    el.style.left = (10 + Math.random() * 45) + '%';
    el.style.fontSize = (1.4 + Math.random() * 1.2) + 'rem';
    el.style.setProperty('--dur', (3.5 + Math.random() * 2.5).toFixed(2) + 's');
    el.style.setProperty('--drift', Math.round(Math.random() * 24 - 12) + 'px');
    el.style.setProperty('--spin', Math.round(Math.random() * 30 - 15) + 'deg');
    el.addEventListener('animationend', () => { el.remove(); floating--; });
    $('bursts').appendChild(el);
    floating++;
    state.burstsSpawned++;
  }
  setInterval(launch, LAUNCH_EVERY);

  // ---- rendering --------------------------------------------------------

  let pending = false;
  function scheduleRender() {
    // A timer rather than requestAnimationFrame: it also runs in a
    // background tab, so the page is current when it comes back.
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; render(); }, 120);
  }

  function render() {
    prune();
    renderChart();
    renderTop();
    renderTiles();
    renderIdle();
    state.rendered++;
  }

  // prune forgets what neither the chart nor the last minute shows.
  function prune() {
    const horizon = newestStart - Math.max(WINDOWS * cfg.windowMs, MINUTE) - cfg.windowMs;
    for (const [key, r] of results) {
      if (r.window_start < horizon) results.delete(key);
    }
  }

  function svg(tag, attrs, text) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // yScale picks whole-number gridlines for counts up to max: a step of 1,
  // 2 or 5 times a power of ten, about four of them, and the top of the axis
  // at a multiple of the step. Counts are integers, so labels are too.
  function yScale(max) {
    if (max <= 4) return { top: Math.max(1, Math.ceil(max)), step: 1 };
    const raw = max / 4;
    const pow = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * pow).find((st) => st >= raw);
    return { top: Math.ceil(max / step) * step, step };
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
  }

  function colorOf(emoji, used) {
    let c = colors.get(emoji);
    if (c && !used.has(c)) { used.add(c); return c; }
    c = PALETTE.find((p) => !used.has(p)) || PALETTE[0];
    colors.set(emoji, c);
    used.add(c);
    return c;
  }

  function renderChart() {
    const chart = $('chart');
    const W = 800, H = 320, L = 52, R = 40, T = 14, B = 30;
    const nodes = [];
    if (!Number.isFinite(newestStart)) {
      nodes.push(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'waiting for window results…'));
      chart.replaceChildren(...nodes);
      $('legend').replaceChildren();
      return;
    }
    const first = newestStart - (WINDOWS - 1) * cfg.windowMs;
    const series = new Map(); // emoji -> {counts, total}
    for (const r of results.values()) {
      const i = Math.round((r.window_start - first) / cfg.windowMs);
      if (i < 0 || i >= WINDOWS) continue;
      let s = series.get(r.emoji_type);
      if (!s) { s = { counts: new Array(WINDOWS).fill(0), total: 0 }; series.set(r.emoji_type, s); }
      s.counts[i] += r.count;
      s.total += r.count;
    }
    const shown = [...series.entries()].sort((a, b) => b[1].total - a[1].total || (a[0] < b[0] ? -1 : 1)).slice(0, SERIES);
    const scale = yScale(Math.max(0, ...shown.flatMap(([, s]) => s.counts)));
    const peak = scale.top;
    const x = (i) => L + (i / (WINDOWS - 1)) * (W - L - R);
    const y = (v) => T + (1 - v / peak) * (H - T - B);

    for (let v = 0; v <= peak; v += scale.step) {
      nodes.push(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      nodes.push(svg('text', { x: L - 8, y: y(v) + 4, 'text-anchor': 'end', class: 'axis-label y-label' }, fmt(v)));
    }
    for (const i of [0, 20, 40, WINDOWS - 1]) {
      nodes.push(svg('text', { x: x(i), y: H - 8, 'text-anchor': i === 0 ? 'start' : (i === WINDOWS - 1 ? 'end' : 'middle'), class: 'axis-label' },
        clock(first + i * cfg.windowMs)));
    }
    const used = new Set();
    const legend = [];
    for (const [emoji, s] of shown) {
      const color = colorOf(emoji, used);
      const points = s.counts.map((c, i) => x(i).toFixed(1) + ',' + y(c).toFixed(1)).join(' ');
      nodes.push(svg('polyline', { points, stroke: color, 'data-emoji': emoji, 'data-total': s.total }));
      const last = s.counts[WINDOWS - 1];
      nodes.push(svg('text', { x: W - R + 6, y: y(last) + 5, class: 'end-label emoji' }, emoji));
      const item = document.createElement('span');
      item.className = 'item';
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = color;
      const e = document.createElement('span');
      e.className = 'emoji';
      e.textContent = emoji;
      item.append(sw, e, ' ' + fmt(s.total));
      legend.push(item);
    }
    chart.replaceChildren(...nodes);
    $('legend').replaceChildren(...legend);
  }

  function lastMinute() {
    const since = newestStart + cfg.windowMs - MINUTE;
    const totals = new Map();
    for (const r of results.values()) {
      if (r.window_start < since) continue;
      totals.set(r.emoji_type, (totals.get(r.emoji_type) || 0) + r.count);
    }
    return [...totals.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }

  function renderTop() {
    const top = lastMinute();
    const list = $('top');
    if (top.length === 0) {
      const li = document.createElement('li');
      li.className = 'none';
      li.textContent = 'nothing yet';
      list.replaceChildren(li);
      return;
    }
    const max = top[0][1];
    list.replaceChildren(...top.slice(0, 10).map(([emoji, count]) => {
      const li = document.createElement('li');
      li.dataset.emoji = emoji;
      const e = document.createElement('span');
      e.className = 'emoji';
      e.textContent = emoji;
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fill = document.createElement('span');
      fill.style.width = ((count / max) * 100).toFixed(1) + '%';
      bar.append(fill);
      const c = document.createElement('span');
      c.className = 'count';
      c.textContent = fmt(count);
      li.append(e, bar, c);
      return li;
    }));
  }

  function renderTiles() {
    const top = lastMinute();
    $('minute-total').textContent = top.length ? fmt(top.reduce((a, [, c]) => a + c, 0)) : '–';
    $('minute-kinds').textContent = top.length ? top.length + ' different emojis' : '\u00a0';

    // The newest window may still be filling in from other partitions, so
    // the rate averages the five windows before it.
    if (Number.isFinite(newestStart)) {
      let sum = 0, oldest = Infinity;
      const from = newestStart - 5 * cfg.windowMs;
      for (const r of results.values()) {
        if (r.window_start >= from && r.window_start < newestStart) {
          sum += r.count;
          oldest = Math.min(oldest, r.window_start);
        }
      }
      const windows = Number.isFinite(oldest) ? Math.round((newestStart - oldest) / cfg.windowMs) : 0;
      $('rate').textContent = windows > 0 ? fmt(sum / (windows * cfg.windowMs / 1000)) : '–';
    }

    if (latencies.length) {
      const sorted = [...latencies].sort((a, b) => a - b);
      const p50 = sorted[Math.floor(sorted.length / 2)];
      $('latency').textContent = fmt(state.latencyMs) + ' ms';
      $('latency-detail').textContent = 'p50 ' + fmt(p50) + ' ms over ' + latencies.length + ' results';
    }
    $('results').textContent = fmt(state.results);
    $('results-live').textContent = fmt(state.live) + ' live';
  }

  // renderIdle shows how to send an emoji while none arrive.
  function renderIdle() {
    const idle = state.lastLive === 0 ? results.size === 0 : Date.now() - state.lastLive > IDLE_AFTER;
    $('idle').hidden = !idle;
  }

  function fillIdle() {
    const url = location.origin + '/api';
    $('idle-curl').textContent = "curl -H 'Content-Type: application/json' -d '{\"user_id\":\"me\",\"emoji_type\":\"🔥\"}' " + url;
  }
  setInterval(renderIdle, 1000);

  // ---- data -------------------------------------------------------------

  async function loadHistory() {
    try {
      const res = await fetch('/api/windows?limit=' + HISTORY, { cache: 'no-store' });
      if (!res.ok) return;
      const list = await res.json();
      for (const r of list) add(r, false);
    } catch (_) {
      // The stream still works; the chart just starts empty.
    }
    render();
  }

  // ---- event stream -----------------------------------------------------

  // The stream is read with fetch rather than EventSource: EventSource gives
  // up for good after a 503 (too many viewers) and hides the status and
  // Retry-After. Here every failure, a refusal, an unreachable server or a
  // dropped stream, is retried with jittered exponential backoff, at least
  // Retry-After, and the badge says what is going on.

  // Handlers of named events; other panels add theirs with
  // window.emostream.on(name, fn), fn getting the event's data string.
  const handlers = new Map();
  state.on = (name, fn) => { handlers.set(name, fn); };
  state.on('window', (data) => {
    try { add(JSON.parse(data), true); } catch (_) { /* not a result */ }
  });

  let attempt = 0;
  let countdown = 0;

  function setStatus(st, text) {
    const el = $('status');
    el.dataset.state = st;
    el.textContent = text;
    state.status = st;
  }

  // delay is the wait before the next try: RETRY_MIN doubling per failure up
  // to RETRY_MAX, at least the server's Retry-After, plus up to 50 % jitter
  // so that refused viewers do not all come back at once.
  function delay(retryAfterMs) {
    const base = Math.max(Math.min(RETRY_MAX, RETRY_MIN * Math.pow(2, attempt)), retryAfterMs);
    attempt++;
    return base + Math.random() * base * 0.5;
  }

  function retryIn(ms, st, text) {
    state.retries++;
    const until = Date.now() + ms;
    const tick = () => {
      setStatus(st, text.replace('{s}', String(Math.max(1, Math.ceil((until - Date.now()) / 1000)))));
    };
    tick();
    clearInterval(countdown);
    countdown = setInterval(tick, 500);
    setTimeout(() => { clearInterval(countdown); connect(); }, ms);
  }

  function retryAfter(res) {
    const v = res.headers.get('Retry-After');
    if (!v) return 0;
    const secs = Number(v);
    if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
    const at = Date.parse(v);
    return Number.isFinite(at) ? Math.max(0, at - Date.now()) : 0;
  }

  async function connect() {
    setStatus(state.connects ? 'reconnecting' : 'connecting', state.connects ? 'reconnecting…' : 'connecting…');
    let res;
    try {
      res = await fetch('/events', { headers: { Accept: 'text/event-stream' }, cache: 'no-store' });
    } catch (_) {
      retryIn(delay(0), 'reconnecting', 'dashboard unreachable, reconnecting in {s} s…');
      return;
    }
    if (res.status !== 200 || !res.body) {
      let reason = 'HTTP ' + res.status;
      try { const e = await res.json(); if (e && e.error) reason = e.error; } catch (_) { /* not JSON */ }
      if (res.status === 503 && reason === 'too many viewers') {
        state.refused++;
        retryIn(delay(retryAfter(res)), 'full', 'too many viewers, retrying in {s} s…');
      } else {
        retryIn(delay(retryAfter(res)), 'reconnecting', reason + ', retrying in {s} s…');
      }
      return;
    }
    const opened = Date.now();
    state.connects++;
    setStatus('live', 'live');
    // After a reconnect, fetch what arrived while we were away.
    if (state.connects > 1) loadHistory();
    try {
      await readEvents(res.body);
    } catch (_) {
      // the connection broke: same as an end
    }
    if (Date.now() - opened > STEADY) attempt = 0;
    retryIn(delay(0), 'reconnecting', 'connection lost, reconnecting in {s} s…');
  }

  // readEvents parses a text/event-stream body until it ends.
  async function readEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '', event = '', data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          const fn = handlers.get(event || 'message');
          if (data.length && fn) fn(data.join('\n'));
          event = '';
          data = [];
          continue;
        }
        if (line[0] === ':') continue; // comment: greeting or heartbeat
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? '' : line.slice(colon + 1);
        if (v[0] === ' ') v = v.slice(1);
        if (field === 'event') event = v;
        else if (field === 'data') data.push(v);
      }
    }
  }

  fillIdle();
  loadHistory();
  connect();
})();
