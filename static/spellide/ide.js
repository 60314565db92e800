/* spellide run page behaviour. htmx does the requests and swaps; this file only does what
   htmx cannot know about: the websocket's resume point, following the newest step (or holding
   still), the step tree's indentation, keyboard navigation, and the editor's live highlight. */
(() => {
  'use strict';
  const $ = (s, r = document) => r.querySelector(s);
  const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
  const MAX_ROWS = 400;          // rows kept in the DOM while following a long run
  const MAX_SPACING = 40;        // most ms between applying incoming messages (see scheduleApply)
  const FOLLOW_GAP = 1000;       // least ms between detail loads while following a streaming run (nobody reads faster)

  const csrf = () => ($('meta[name="csrf-token"]') || {}).content || '';
  const ide = () => document.getElementById('ide');
  const base = () => (ide() || {dataset: {}}).dataset.base || '';

  // Fragments pushed over the websocket cannot carry a per-user CSRF token: add it here.
  document.addEventListener('htmx:config:request', (e) => {
    const req = e.detail.ctx.request;
    if (req.method && req.method.toUpperCase() !== 'GET') req.headers['X-CSRFToken'] = csrf();
  });

  // ---- the live stream: apply events in order, or ask for the state ---------------------------
  // Every event the server sends carries its number (data-seq) and every fragment carries
  // whole state (a step's row, the status, the totals; fragments.py), so applying one twice or
  // late changes nothing. What the page must never do is go on after it missed something: a
  // gap in the numbers, a reconnect, or the server's data-resync make it load the state of
  // what it shows over HTTP (views/live.py) and apply only the events after that state.
  let lastSeq = 0, connections = 0, syncing = false, syncAgain = false;
  const touched = new Map();     // step id -> the newest event that changed it (for the detail)
  function wsUrl(live) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}${live.dataset.wsBase}?last_seq=${lastSeq}`;
  }
  function setSeq(seq) {
    lastSeq = seq;
    const live = $('#live');
    if (live) live.dataset.seq = String(seq);
  }
  document.addEventListener('htmx:ws:before:connection', (e) => {
    const live = $('#live');
    if (live && e.detail.connection) e.detail.connection.url = wsUrl(live);
  });
  // every control sent over the socket carries the page's control token (the server's CSRF
  // equivalent for websocket frames; see consumers.py)
  document.addEventListener('htmx:ws:before:message:outgoing', (e) => {
    const live = $('#live');
    if (live && live.dataset.controlToken && e.detail.message) e.detail.message.values.control_token = live.dataset.controlToken;
  });
  document.addEventListener('htmx:ws:before:message:incoming', (e) => {
    const data = e.detail.message && e.detail.message.data;
    e.detail.cancelled = true;          // applied by apply() below instead
    if (typeof data !== 'string') return;
    const live = $('#live');
    if (live && e.detail.connection) e.detail.connection.url = wsUrl(live);  // a reconnect asks from here
    inbox.push(data);
    if (inbox.length === 1) scheduleApply();
  });
  // Incoming messages are applied together, at most once per frame, spaced so that
  // applying and rendering them takes about a third of the page's time, and at most
  // MAX_SPACING ms apart.
  // * Together: a fast run sends a message or two per step, and on a slow machine each swap
  //   with its frame cost up to ~40 ms; one swap per message kept the page (and a core) busy.
  // * A third: at half of its time the page took half a core from the run (ide_overhead bench).
  // * The cost is a running average: after one slow frame (a collection, a big batch) the next
  //   swap was spaced so far that its batch grew big and slow in turn.
  // * The cap: spaced by cost alone, a page needing more than a third of its time to keep up
  //   fell further behind with every swap, and the stream's p95 latency went from under
  //   100 ms to 150-500 ms in about one run in three.
  let inbox = [], applyStart = 0, applyCost = 0, applyTimer = false;
  function scheduleApply() {
    if (applyTimer) return;
    applyTimer = true;
    const run = () => { applyTimer = false; apply(); };
    if (document.hidden) { setTimeout(run, 250); return; }
    const wait = applyStart + Math.min(3 * applyCost, MAX_SPACING) - performance.now();
    if (wait > 0) setTimeout(() => requestAnimationFrame(run), wait); else requestAnimationFrame(run);
  }
  function apply() {
    if (syncing || !inbox.length) return;   // resync() applies what waits when it is done
    const t0 = applyStart = performance.now();
    const frames = inbox;
    inbox = [];
    let changed = false;
    for (let i = 0; i < frames.length; i++) {
      const res = applyFrame(frames[i]);
      if (res === 'sync') {
        inbox = frames.slice(i + 1).concat(inbox);
        resync();
        break;
      }
      if (res === 'gap') {
        inbox = frames.slice(i).concat(inbox);   // applied after the state, if still newer
        resync();
        break;
      }
      changed = changed || res === 'applied';
    }
    if (changed) afterApply();
    setTimeout(() => {                 // runs after this frame is drawn
      const cost = performance.now() - t0;
      applyCost = applyCost ? 0.75 * applyCost + 0.25 * cost : cost;
    });
  }
  // One frame: 'applied', 'dup' (nothing newer in it), 'gap' (something before it is missing)
  // or 'sync' (the server says: load the state).
  function applyFrame(text) {
    const tpl = document.createElement('template');
    tpl.innerHTML = text;
    const parts = Array.from(tpl.content.children).filter((p) => p.localName === 'hx-partial');
    let first = Infinity, last = 0;
    for (const p of parts) {
      if (p.dataset.resync !== undefined) return 'sync';
      // the server's newest number (consumers.py heartbeat): behind it, the page lost the end
      if (p.dataset.head !== undefined) return +p.dataset.head > lastSeq ? 'sync' : 'dup';
      const seq = +p.dataset.seq;
      if (seq) { first = Math.min(first, seq); last = Math.max(last, seq); }
    }
    if (!last) {                         // not an event (a control's answer): apply as it is
      parts.forEach(applyPart);
      return 'applied';
    }
    if (last <= lastSeq) return 'dup';
    if (first > lastSeq + 1) return 'gap';
    parts.forEach(applyPart);
    setSeq(last);
    return 'applied';
  }
  function applyPart(p) {
    const target = p.getAttribute('hx-target') || '', swap = p.getAttribute('hx-swap');
    if (swap === 'none' || !target.startsWith('#')) return;
    if (p.dataset.row !== undefined) { upsertRow(p.firstElementChild, +p.dataset.seq); return; }
    const el = document.getElementById(target.slice(1));
    if (!el) return;
    if (swap === 'innerHTML') {
      if (el.id === 'pause-panel' && samePause(el, p)) return;
      // the lanes come whole every batch: the reader's scroll through many lanes stays
      const scroll = el.id === 'agent-lanes' && el.querySelector('.lanes-scroll');
      const top = scroll ? scroll.scrollTop : 0;
      el.replaceChildren(...p.childNodes);
      if (top) { const s = el.querySelector('.lanes-scroll'); if (s) s.scrollTop = top; }
      // (the lanes hold each agent's pause control, an htmx form)
      if (el.id === 'pause-panel' || el.id === 'step-rows' || el.id === 'agent-lanes') htmx.process(el);
    } else if (swap === 'outerHTML') {
      el.replaceWith(...p.childNodes);
    } else if (swap === 'beforeend') {
      el.append(...p.childNodes);
    }
  }
  // The pause panel holds an editor: the same pause rendered again must not replace what is
  // being typed into it.
  function samePause(el, p) {
    const now = el.querySelector('#pause-box'), next = p.querySelector('#pause-box');
    return !!(now && next && now.dataset.seq === next.dataset.seq);
  }
  // A step's row, whole: it replaces the row on the page, or takes its place in the list
  // (rows are in step order) when it belongs to the window the page shows.
  function upsertRow(row, seq) {
    if (!row) return;
    const id = +row.dataset.step;
    touched.set(id, Math.max(seq || 0, touched.get(id) || 0));
    const old = document.getElementById('step-row-' + id);
    if (old) { old.replaceWith(row); return; }
    const list = $('#step-rows');
    if (!list) return;
    const rows = $$('#step-rows > .row');
    const later = $('#rows-later'), earlier = $('#rows-earlier');
    if (!rows.length) { list.insertBefore(row, later); }
    else if (id > +rows[rows.length - 1].dataset.step) {
      // past an older window: counted by rows-later, unless it is the next row (step ids are
      // consecutive): a window read while steps were being stored may count a step as
      // "later" whose row then arrives as an event; the window grows, and once nothing is
      // after it rows-later goes (afterApply)
      if (later && id !== +rows[rows.length - 1].dataset.step + 1) return;
      rows[rows.length - 1].after(row);
    } else if (id < +rows[0].dataset.step) {
      if (earlier) return;             // before the window: outside it
      rows[0].before(row);
    } else {
      rows.find((r) => +r.dataset.step > id).before(row);
    }
    const none = $('#no-steps');
    if (none) none.remove();
  }
  // The state over HTTP: what the page shows (its first row on; to the end when it shows the
  // tail), with the number of the event it is at least as new as.
  async function resync() {
    if (syncing) { syncAgain = true; return; }
    if (!$('#live')) return;
    syncing = true;
    settle();
    try {
      do {
        syncAgain = false;
        const rows = $$('#step-rows > .row'), q = new URLSearchParams();
        if (rows.length) { q.set('first', rows[0].dataset.step); q.set('count', String(rows.length)); }
        if (!$('#rows-later')) q.set('tail', '1');
        let resp = null;
        try { resp = await fetch(`${base()}/live/?${q}`, {credentials: 'same-origin'}); } catch (err) { /* offline */ }
        if (resp && resp.status >= 400 && resp.status < 500) break;   // gone or forbidden: a reload says so
        if (!resp || !resp.ok) { await new Promise((r) => setTimeout(r, 1000)); syncAgain = true; continue; }
        applySync(await resp.text());
      } while (syncAgain);
    } finally {
      syncing = false;
    }
    afterApply(true);
    apply();
  }
  function applySync(text) {
    const tpl = document.createElement('template');
    tpl.innerHTML = text;
    let seq = null;
    for (const p of Array.from(tpl.content.children)) {
      if (p.dataset.sync !== undefined) seq = +p.dataset.sync; else applyPart(p);
    }
    if (seq !== null) setSeq(Math.max(seq, lastSeq));
  }
  const setConn = (on) => { const c = $('#conn'); if (c) c.classList.toggle('on', on); };
  document.addEventListener('htmx:ws:after:connection', () => {
    setConn(true);
    if (++connections > 1) resync();   // events may have been missed while it was away
  });
  document.addEventListener('htmx:ws:close', () => setConn(false));

  // ---- follow / hold the feed ---------------------------------------------------------------
  let hold = false;
  function setHold(on) {
    hold = on;
    const b = $('#hold-feed');
    if (b) { b.setAttribute('aria-pressed', String(on)); b.textContent = on ? 'Follow feed' : 'Hold feed'; }
    document.body.classList.toggle('held', on);
    if (!on) follow(followTarget());
  }
  document.addEventListener('click', (e) => {
    if (e.target.closest('#hold-feed')) setHold(!hold);
  });

  function follow(row) {
    if (!hold && row && row.isConnected) select(row, {push: false, auto: true});
  }

  // ---- selecting a step ---------------------------------------------------------------------
  function mark(stepId) {
    $$('#step-rows > .row.sel').forEach((r) => r.classList.remove('sel'));
    const row = document.getElementById('step-row-' + stepId);
    if (row) { row.classList.add('sel'); reveal(row); }
    if (ide()) ide().dataset.selected = String(stepId);
    markLane(String(stepId));
  }
  // Scrolling a row into view needs the layout: done at once it forces a layout per streamed
  // event (measured: a fifth of the page's time while following a fast run); done in the next
  // frame it costs one layout per frame, and only the newest row of the frame is scrolled to.
  let revealRow = null;
  function reveal(row) {
    if (!revealRow) requestAnimationFrame(() => {
      const r = revealRow;
      revealRow = null;
      if (r.isConnected) r.scrollIntoView({block: 'nearest'});
    });
    revealRow = row;
  }
  function activeTab() {
    const t = $('#step-detail .tabs .tab.on');
    return t ? t.dataset.tab : '';
  }
  // One detail request at a time; a newer wish replaces an older one that has not started.
  // Loads made while following a fast run are spaced out, so the server spends its time on
  // the run and the event stream rather than on re-rendering a detail nobody can read yet.
  // While a load is pending, the detail on the page is not the selected step's: nothing may
  // treat it as the selection (see checkDetail), and a tab picked meanwhile is
  // remembered for the load instead of being loaded into the detail about to be replaced.
  let inflight = false, wanted = null, lastAuto = 0, pumpTimer = null, chosenTab = null, followGap = FOLLOW_GAP;
  const loading = () => inflight || wanted !== null;
  // spacing is for a detail that a running run keeps changing; once it is paused or over,
  // the last load is the one that shows the truth, and waiting for it helps nobody
  const streaming = () => { const s = $('#run-state'); return !!s && s.dataset.runState === 'running'; };
  function loadDetail(stepId, push, auto = false) {
    wanted = {stepId, push, auto};
    pump();
  }
  async function pump() {
    const sd = $('#step-detail');
    if (sd) sd.setAttribute('aria-busy', String(loading()));
    if (inflight || !wanted) return;
    const wait = wanted.auto && streaming() ? lastAuto + followGap - performance.now() : 0;
    if (wait > 0) {
      if (!pumpTimer) pumpTimer = setTimeout(() => { pumpTimer = null; pump(); }, wait);
      return;
    }
    if (pumpTimer) { clearTimeout(pumpTimer); pumpTimer = null; }
    const w = wanted;
    wanted = null;
    inflight = true;
    const started = performance.now();
    if (w.auto) lastAuto = started;
    const tab = chosenTab || activeTab();
    chosenTab = null;
    const url = `${base()}/steps/${w.stepId}/`;
    const shown = url + (tab && tab !== 'tree' ? '?tab=' + tab : '');
    if (w.push) history.pushState({}, '', shown); else history.replaceState({}, '', shown);
    try {
      await htmx.ajax('GET', `${url}?part=detail${tab ? '&tab=' + tab : ''}`, {target: '#step-detail', swap: 'innerHTML'});
    } catch (err) { /* a failed load leaves the old detail; the next wish retries */ }
    // a big detail on a slow machine: following spends at most about a tenth of the time on it
    if (w.auto) followGap = Math.max(FOLLOW_GAP, 10 * (performance.now() - started));
    inflight = false;
    pump();
    if (!loading()) checkDetail();     // events for the step may have come while it loaded
    settle();
  }
  document.addEventListener('click', (e) => {
    const t = e.target.closest('#step-detail .tabs .tab');
    if (!t || !loading() || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    e.stopPropagation();            // capture phase: htmx never sees it
    chosenTab = t.dataset.tab;
    $$('#step-detail .tabs .tab').forEach((x) => x.classList.toggle('on', x === t));
    // the load on its way asked for the old tab: load the selected step again after it
    if (inflight && !wanted && ide()) wanted = {stepId: ide().dataset.selected, push: false, auto: false};
    // a load held back while following is now the reader's own wish: no waiting
    if (wanted && wanted.auto) { wanted.auto = false; clearTimeout(pumpTimer); pumpTimer = null; pump(); }
  }, true);
  function select(row, {push = true, auto = false} = {}) {
    if (!row || !$('#step-detail')) return;
    mark(row.dataset.step);
    loadDetail(row.dataset.step, push, auto);
  }
  document.addEventListener('click', (e) => {
    const row = e.target.closest('#step-rows > .row');
    if (!row || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;  // new tab: plain link
    if (!$('#step-detail')) return;     // another view (effect cache, forks, setup): the link opens the step
    e.preventDefault();
    const rows = $$('#step-rows > .row');
    if (row !== rows[rows.length - 1] && !hold && $('#hold-feed')) setHold(true);  // reading an older step
    select(row);
  });

  // links to other steps inside the detail (parent, continued by, calls), found by the step
  // search, or a step's mark on the agent lanes: stay in the page
  document.addEventListener('click', (e) => {
    const a = e.target.closest('#step-detail a.step-link[data-step], #pause-panel a.step-link[data-step], #step-hits a.step-link[data-step], #agent-lanes a.lane-step[data-step]');
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey) return;
    const row = document.getElementById('step-row-' + a.dataset.step);
    if (!row) return;                       // outside the loaded window: a normal page load
    e.preventDefault();
    if (!hold && $('#hold-feed')) setHold(true);
    select(row);
  });

  // ---- agents: the lanes' selection and the step list's filter by agent ----------------------
  // The lanes are whole state from the server (lanes.py); what is the reader's own is kept
  // here and put back on every new rendering: the selected step's mark, and the agent whose
  // steps alone the list shows (a lane's label toggles it).
  let agentFilter = '', filtered = false;   // filtered: rows may be hidden now
  function markLane(stepId) {
    $$('#agent-lanes a.lane-step.sel').forEach((a) => a.classList.remove('sel'));
    const a = stepId && $(`#agent-lanes a.lane-step[data-step="${CSS.escape(stepId)}"]`);
    if (a) a.classList.add('sel');
  }
  function syncAgents() {
    const el = ide(), panel = $('#lanes-panel');
    if (el && panel) el.dataset.multiAgent = '1';     // (agents are never unregistered)
    $$('#agent-lanes .lane-label').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.agent === agentFilter)));
    if (agentFilter || filtered) {      // (a page that never filtered touches no row)
      $$('#step-rows > .row').forEach((r) => { r.hidden = !!agentFilter && r.dataset.agent !== agentFilter; });
      filtered = !!agentFilter;
    }
    if (panel) markLane(el && el.dataset.selected);
  }
  document.addEventListener('click', (e) => {
    const b = e.target.closest('#agent-lanes .lane-label[data-agent]');
    if (!b) return;
    agentFilter = agentFilter === b.dataset.agent ? '' : b.dataset.agent;
    syncAgents();
  });

  // ---- the step list: indentation, live rows, trimming ----------------------------------------
  // A step whose parent was continued by it (an extension) stays at its parent's level; a
  // nested self-call (the parent is still waiting for its value) is indented one level.
  function nestRow(row) {
    const p = row.dataset.parent;
    let nest = 0, call = false;
    if (p !== '' && p !== undefined) {
      const pr = document.getElementById('step-row-' + p);
      const cont = document.getElementById(`step-${p}-cont`);
      if (pr) {
        const pn = +(pr.style.getPropertyValue('--nest') || 0);
        const continued = cont && cont.dataset.cont === row.dataset.step;
        nest = continued ? pn : pn + 1;
        call = !continued;
      }
    }
    row.style.setProperty('--nest', String(Math.min(nest, 16)));
    row.classList.toggle('call', call);
  }
  function earlierButton(count, firstId) {
    const b = document.createElement('button');
    b.type = 'button'; b.className = 'more-rows'; b.id = 'rows-earlier'; b.dataset.count = String(count);
    b.setAttribute('hx-get', `${base()}/window/?before=${firstId}`);
    b.setAttribute('hx-target', 'this'); b.setAttribute('hx-swap', 'outerHTML');
    b.textContent = `↑ ${count.toLocaleString()} earlier`;
    return b;
  }
  function trim(keepPlace) {
    const rows = $$('#step-rows > .row');
    if (rows.length <= MAX_ROWS) return;
    const drop = rows.slice(0, rows.length - MAX_ROWS);
    // keep the reader's place, unless following (the newest row is scrolled to anyway): the
    // row height and the scroll position cost a layout, too dear for every batch of a fast run
    const list = $('#step-list'), shift = keepPlace && list ? drop.length * rows[0].offsetHeight : 0;
    drop.forEach((r) => r.remove());
    if (shift) list.scrollTop = Math.max(0, list.scrollTop - shift);
    const first = $('#step-rows > .row');
    const old = $('#rows-earlier');
    const b = earlierButton((old ? +old.dataset.count : 0) + drop.length, first.dataset.step);
    if (old) old.replaceWith(b); else $('#step-rows').prepend(b);
    htmx.process(b);
  }
  // After applied events (or the state): nesting, the window's counts, the selection, trimming,
  // following, the detail, the controls' state.
  function afterApply(synced = false) {
    $$('#step-rows > .row').forEach(nestRow);
    syncAgents();
    const later = $('#rows-later');
    if (later) {
      const earlier = $('#rows-earlier'), count = $('#step-count');
      const n = Math.max(0, (count ? +count.textContent : 0) - (earlier ? +earlier.dataset.count : 0) - $$('#step-rows > .row').length);
      later.dataset.count = String(n);
      const t = later.querySelector('.n'); if (t) t.textContent = n.toLocaleString();
      if (!n) later.remove();          // nothing after the window: it is the tail
    }
    const sel = ide() && ide().dataset.selected;
    if (sel) { const s = document.getElementById('step-row-' + sel); if (s) s.classList.add('sel'); }
    const following = !hold && $('#hold-feed') && !later;
    trim(!following);
    if (following) {
      const t = followTarget();
      if (t && t.dataset.step !== sel) follow(t);
    }
    syncState();
    initEditors();
    if (synced && ide() && ide().dataset.selected && $('#step-detail')) loadDetail(ide().dataset.selected, false, true);
    else checkDetail();
    settle();
  }
  // While following: the paused step (where a fresh page opens too), else the newest step.
  function followTarget() {
    const box = $('#pause-box');
    if (box && box.dataset.step !== '' && +box.dataset.step >= 0) {
      const r = document.getElementById('step-row-' + box.dataset.step);
      if (r) return r;
    }
    const rows = $$('#step-rows > .row:not([hidden])');
    return rows[rows.length - 1];
  }
  // The detail shows the selected step as of its newest event, or is on its way to.
  function checkDetail() {
    const sel = ide() && ide().dataset.selected;
    if (!sel || !$('#step-detail') || loading()) return;
    const d = $('#detail');
    const a = document.activeElement;
    if (d && a && d.contains(a) && a.matches('textarea, input')) return;  // do not clobber typing
    if (!d || d.dataset.step !== sel || (touched.get(+sel) || 0) > +(d.dataset.seq || 0)) loadDetail(sel, false, true);
  }
  // data-settled on #ide: nothing received waits to be applied, no state or detail is being
  // loaded, and the detail is the selected step's as of its newest event (tests wait for it).
  function settle() {
    const el = ide();
    if (!el) return;
    const d = $('#detail'), sel = el.dataset.selected;
    const detailOk = !$('#step-detail') || !sel
      || (d && d.dataset.step === sel && (touched.get(+sel) || 0) <= +(d.dataset.seq || 0));
    el.dataset.settled = (!syncing && !inbox.length && !loading() && detailOk) ? '1' : '0';
  }
  function watchRows() {
    const list = $('#step-rows');
    if (!list || list._watched) return;
    list._watched = true;
    $$('#step-rows > .row').forEach(nestRow);
    const sel = ide() && ide().dataset.selected;
    if (sel) mark(sel);
    // rows an earlier/later button loaded: nest them like the rest
    new MutationObserver(() => { $$('#step-rows > .row').forEach(nestRow); syncAgents(); }).observe(list, {childList: true});
  }

  // ---- streamed model text: each piece lands at its offset in the step's live text ------------
  // A detail loaded mid-stream already holds the text so far (data-len, in UTF-16 units like
  // the offsets), so a piece it holds is skipped; a piece past the end means some arrived while
  // no live strip was on the page: the text so far is fetched instead.
  function placePiece(span) {
    const pre = document.getElementById(`live-${span.dataset.step}-completion`);
    span.remove();
    if (!pre) return;
    const text = span.textContent, at = +span.dataset.at;
    let len = +pre.dataset.len || 0;
    if (span.dataset.reset) { pre.textContent = ''; len = 0; }
    if (at > len) { refetchLive(pre, span.dataset.step); return; }
    if (at + text.length > len) { pre.append(text.slice(len - at)); len = at + text.length; }
    pre.dataset.len = String(len);
  }
  async function refetchLive(pre, step) {
    if (pre._fetching) return;
    pre._fetching = true;
    try {
      const resp = await fetch(`${base()}/steps/${step}/text/completion/`, {credentials: 'same-origin'});
      const text = resp.ok ? await resp.text() : '';
      if (pre.isConnected && text.length > (+pre.dataset.len || 0)) { pre.textContent = text; pre.dataset.len = String(text.length); }
    } catch (err) { /* the completion event brings the whole text */ }
    pre._fetching = false;
  }
  function watchStream() {
    const sink = $('#stream-sink');
    if (!sink || sink._watched) return;
    sink._watched = true;
    new MutationObserver(() => { $$('#stream-sink > span').forEach(placePiece); }).observe(sink, {childList: true});
  }

  // ---- keyboard ---------------------------------------------------------------------------------
  function neighbour(dir) {
    const list = $('#step-list');
    const sel = (ide() && ide().dataset.selected) || (list && list.dataset.selected);
    const rows = $$('#step-rows > .row:not([hidden])');
    if (!rows.length) return null;
    let i = rows.findIndex((r) => r.dataset.step === sel);
    if (i < 0) return dir > 0 ? rows[0] : rows[rows.length - 1];
    if (i + dir < 0) { const b = $('#rows-earlier'); if (b) b.click(); return null; }
    if (i + dir >= rows.length) { const b = $('#rows-later'); if (b) b.click(); return null; }
    return rows[i + dir];
  }
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.closest('input, textarea, select, [contenteditable]'))) return;
    if (!$('#step-rows')) return;
    const k = e.key;
    if (k === 'j' || k === 'ArrowDown' || k === 'k' || k === 'ArrowUp') {
      const row = neighbour(k === 'j' || k === 'ArrowDown' ? 1 : -1);
      e.preventDefault();
      if (row && !$('#step-detail')) { location.href = row.href; return; }   // another view: open the step
      if (row) {
        const rows = $$('#step-rows > .row');
        if (row !== rows[rows.length - 1] && $('#hold-feed') && !hold) setHold(true);
        select(row);
      }
    } else if (k === 'h' && $('#hold-feed')) {
      setHold(!hold);
    } else if (/^[1-6]$/.test(k)) {
      const tab = $$('#step-detail .tabs .tab')[+k - 1];
      if (tab) { e.preventDefault(); tab.click(); }
    }
  });

  // ---- after swaps: tab state, the detail, source selection ------------------------------------
  function syncTabs() {
    const pane = $('#tab-body > .tab-pane');
    if (!pane) return;
    $$('#step-detail .tabs .tab').forEach((t) => t.classList.toggle('on', t.dataset.tab === pane.dataset.tab));
  }
  function showSelection() {
    const src = $('#tab-body .src');
    if (!src) return;
    const code = src.querySelector('.src-code');
    const sel = (src.dataset.sel || '').split('-').map(Number);
    const off = +src.dataset.offset || 0;     // the view may start inside a long program
    if (sel.length === 2 && !isNaN(sel[0]) && window.Highlight && CSS.highlights) {
      const range = rangeAt(code, sel[0] - off, sel[1] - off);
      if (range) {
        CSS.highlights.set('spell-sel', new Highlight(range));
        const r = range.getBoundingClientRect(), box = src.getBoundingClientRect();
        src.scrollTop += r.top - box.top - 60;
        return;
      }
    }
    if (src.dataset.errLine) scrollToLine(src, +src.dataset.errLine);
  }
  function rangeAt(root, start, end) {
    if (start < 0) return null;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let pos = 0, range = document.createRange(), started = false, n;
    while ((n = walker.nextNode())) {
      const len = n.data.length;
      if (!started && start <= pos + len) { range.setStart(n, start - pos); started = true; }
      if (started && end <= pos + len) { range.setEnd(n, end - pos); return range; }
      pos += len;
    }
    return null;
  }
  function scrollToLine(src, line) {
    const el = document.getElementById('L' + line);
    if (!el) return;
    src.scrollTop += el.getBoundingClientRect().top - src.getBoundingClientRect().top - 60;
  }
  // tree node -> its text in the source tab (one delegated handler keeps tree markup small)
  document.addEventListener('click', (e) => {
    const a = e.target.closest('.src-link[data-sel]');
    const d = $('#detail');
    if (!a || !d || e.ctrlKey || e.metaKey) return;
    e.preventDefault();
    htmx.ajax('GET', `${base()}/steps/${d.dataset.step}/tab/source/?sel=${a.dataset.sel}`, {target: '#tab-body', swap: 'innerHTML'});
    history.replaceState({}, '', `${base()}/steps/${d.dataset.step}/?tab=source&sel=${a.dataset.sel}`);
  });
  document.addEventListener('click', (e) => {
    const a = e.target.closest('.err-chip[data-line]');
    if (a) { e.preventDefault(); const src = $('#tab-body .src'); if (src) scrollToLine(src, +a.dataset.line); }
  });
  // the run's state, for the controls' CSS (see ide.css: why not a :has() on the page)
  function syncState() {
    const st = $('#run-state'), el = ide();
    if (st && el && el.dataset.state !== st.dataset.state) {
      if (el.dataset.state) clearResults();
      el.dataset.state = st.dataset.state;
    }
  }
  // A control's answer that it did what was asked ("paused", "stop requested") is news, not
  // state: it goes after a few seconds, and at once when the run's state changes.
  function clearResults() { $$('#run-control-result, #pause-result').forEach((el) => el.replaceChildren()); }
  document.addEventListener('htmx:after:swap', (e) => {
    const t = e.target;
    if (t && (t.id === 'run-control-result' || t.id === 'pause-result') && t.querySelector('.control-result.ok')) {
      const shown = t.firstElementChild;
      setTimeout(() => { if (t.firstElementChild === shown) t.replaceChildren(); }, 3000);
    }
    syncState();
    syncTabs();
    checkDetail();       // the selection is the truth: a detail of another step is replaced
    settle();
    if (!$('#tab-body .src') && CSS.highlights) CSS.highlights.delete('spell-sel');
    else showSelection();
    watchRows();
    initEditors();
  });

  // ---- editor: a textarea over a highlighted copy of its text ----------------------------------
  function initEditors() { $$('.editor').forEach(setupEditor); }
  function setupEditor(ed) {
    if (ed._ready) return;
    ed._ready = true;
    const ta = ed.querySelector('textarea'), hl = ed.querySelector('.editor-hl');
    if (!ta || !hl) return;
    const sync = () => { hl.scrollTop = ta.scrollTop; hl.scrollLeft = ta.scrollLeft; };
    let timer = null;
    ta.addEventListener('scroll', sync);
    ta.addEventListener('input', () => {
      hl.textContent = ta.value + '\n';           // plain copy right away keeps the caret aligned
      clearTimeout(timer);
      timer = setTimeout(() => preview(ed, ta, hl, sync), 250);
    });
    if (!hl.textContent && ta.value) preview(ed, ta, hl, sync);
  }
  async function preview(ed, ta, hl, sync) {
    const url = ed.dataset.previewUrl;
    if (!url) return;
    const body = new FormData();
    body.append('text', ta.value);
    body.append('mode', ed.dataset.mode || 'program');
    const sent = ta.value;
    try {
      const resp = await fetch(url, {method: 'POST', body, headers: {'X-CSRFToken': csrf()}, credentials: 'same-origin'});
      if (!resp.ok) return;
      const res = await resp.json();
      if (ta.value !== sent) return;              // typed on meanwhile: a newer preview follows
      hl.innerHTML = res.html + '\n';             // Pygments-escaped HTML from our server
      sync();
      const status = ed.parentElement.querySelector('.editor-status');
      if (status) {
        status.className = 'editor-status ' + (res.ok ? 'ok' : 'refused');
        status.textContent = res.ok ? 'reads' : `does not read: ${res.message}` + (res.line ? ` at line ${res.line}, column ${res.col}` : '');
      }
    } catch (err) { /* offline: keep the plain copy */ }
  }
  // "edit before forking": load the step's text into the fork editor on first use
  document.addEventListener('change', async (e) => {
    const box = e.target.closest('.fork-edit-toggle');
    if (!box) return;
    const form = box.closest('form'), wrap = form.querySelector('.fork-edit'), ta = wrap.querySelector('textarea');
    wrap.hidden = !box.checked;
    ta.disabled = !box.checked;
    if (box.checked && !ta.value && ta.dataset.src) {
      const resp = await fetch(ta.dataset.src, {credentials: 'same-origin'});
      if (resp.ok) { ta.value = await resp.text(); ta.dispatchEvent(new Event('input')); }
    }
  });

  function init() {
    const live = $('#live');
    if (live) lastSeq = +live.dataset.seq || 0;
    settle();
    watchRows();
    syncAgents();
    watchStream();
    initEditors();
    showSelection();
    const sel = ide() && ide().dataset.selected;
    const rows = $$('#step-rows > .row');
    // opened on an older step (a deep link): hold the feed so new steps do not pull the view away
    if (sel && rows.length && rows[rows.length - 1].dataset.step !== sel && $('#hold-feed')) setHold(true);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
