// EmoStream dashboard: the extra aggregations (emostream --aggregations).
// Each one gets a generic panel with the rows of its newest window, from
// /api/aggregations at start and after every reconnect, then live from the
// `aggregation` events of the stream app.js reads.
(() => {
  'use strict';

  const section = document.getElementById('aggregations');
  const state = window.emostream;
  if (!section || !state || !state.on) return;

  const panels = new Map(); // name -> {title, topic, rows: Map("start|end|label" -> row), el}
  state.aggregations = {};  // name -> rows of the shown window (for tests and the curious)

  const fmt = (n) => (Number.isInteger(n) ? n : Number(n.toFixed(2))).toLocaleString('en-US');
  const clock = (ms) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });

  function isRow(r) {
    return r && typeof r.aggregation === 'string' && typeof r.label === 'string' &&
      Number.isFinite(r.window_start) && Number.isFinite(r.window_end) && Number.isFinite(r.value);
  }

  function panel(p) {
    let pn = panels.get(p.name);
    if (pn) return pn;
    const el = document.createElement('div');
    el.className = 'panel aggregation';
    el.dataset.aggregation = p.name;
    const h = document.createElement('h2');
    h.textContent = p.title || p.name;
    const when = document.createElement('div');
    when.className = 'when';
    const list = document.createElement('ol');
    list.className = 'rows';
    el.append(h, when, list);
    section.append(el);
    section.hidden = false;
    pn = { title: p.title, topic: p.topic, rows: new Map(), el, when, list };
    panels.set(p.name, pn);
    render(p.name);
    return pn;
  }

  function add(r) {
    if (!isRow(r)) return;
    const pn = panels.get(r.aggregation);
    if (!pn) return; // not a panel this page knows
    pn.rows.set(r.window_start + '|' + r.window_end + '|' + r.label, r);
    schedule(r.aggregation);
  }

  const pending = new Set();
  function schedule(name) {
    if (pending.has(name)) return;
    pending.add(name);
    setTimeout(() => { pending.delete(name); render(name); }, 120);
  }

  // render shows the newest window's rows: by rank, else by value.
  function render(name) {
    const pn = panels.get(name);
    let newest = -Infinity;
    for (const r of pn.rows.values()) newest = Math.max(newest, r.window_start);
    for (const [k, r] of pn.rows) {
      if (r.window_start < newest - 60 * 60000) pn.rows.delete(k); // keep an hour at most
    }
    const rows = [...pn.rows.values()].filter((r) => r.window_start === newest)
      .sort((a, b) => (a.rank || 0) - (b.rank || 0) || b.value - a.value || (a.label < b.label ? -1 : 1));
    state.aggregations[name] = rows.map((r) => ({ label: r.label, value: r.value, rank: r.rank || 0 }));
    if (rows.length === 0) {
      pn.when.textContent = 'waiting for the first window…';
      pn.list.replaceChildren();
      return;
    }
    pn.when.textContent = 'window ' + clock(rows[0].window_start) + '–' + clock(rows[0].window_end);
    const max = Math.max(...rows.map((r) => Math.abs(r.value)), 1e-9);
    pn.list.replaceChildren(...rows.slice(0, 10).map((r) => {
      const li = document.createElement('li');
      li.dataset.label = r.label;
      const label = document.createElement('span');
      label.className = 'label';
      if (r.rank) {
        const rank = document.createElement('span');
        rank.className = 'rank';
        rank.textContent = r.rank + '. ';
        label.append(rank);
      }
      const text = document.createElement('span');
      text.className = 'emoji';
      text.textContent = r.label;
      label.append(text);
      const bar = document.createElement('span');
      bar.className = 'bar';
      const fill = document.createElement('span');
      fill.style.width = ((Math.abs(r.value) / max) * 100).toFixed(1) + '%';
      bar.append(fill);
      const v = document.createElement('span');
      v.className = 'value';
      v.textContent = fmt(r.value);
      li.append(label, bar, v);
      return li;
    }));
  }

  async function load() {
    try {
      const res = await fetch('/api/aggregations', { cache: 'no-store' });
      if (!res.ok) return;
      for (const p of await res.json()) {
        panel(p);
        for (const r of p.rows || []) add(r);
      }
    } catch (_) {
      // The panels fill from the stream.
    }
  }

  state.on('aggregation', (data) => {
    try { add(JSON.parse(data)); } catch (_) { /* not a row */ }
  });
  // After a reconnect, fetch what arrived while the stream was down.
  let connects = state.connects;
  setInterval(() => {
    if (state.connects !== connects) {
      connects = state.connects;
      load();
    }
  }, 1000);
  load();
})();
