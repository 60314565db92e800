"""Live equals fresh, in real Chromium: for a run watched live, after it ends and at every
pause, the page's step rows (id, status, depth, parent, summary, effect dots, time), detail pane,
run status, totals and step count equal a fresh load of the same URL, and every row equals the
server's own rendering of it.

One server (daphne in a subprocess) and one browser serve the module. Its demos are the
bundled ones plus two without model latency: a 60-step chain and 120 quick io/spit steps.
The scenarios that hid the old bugs (fast runs, reopened pages, dropped sockets and frames, two
viewers) run again with both cores kept busy by two spinning processes.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from .server import AppServer, ROOT, launch, login

pytestmark = pytest.mark.browser

TERMINAL = ("finished", "failed", "stopped", "interrupted")
BUNDLED = sorted(p.stem for p in (ROOT / "spellide" / "demos").glob("*.json"))

# Page scripts see sockets through this wrapper: a test can drop the socket (the page sees an
# abnormal close and reconnects, like a network drop) or lose incoming frames (a gap).
SOCKET_HOOKS = """(() => {
  const Real = window.WebSocket;
  window.__sockets = [];
  window.__loseFrames = 0;
  class Hooked extends Real {
    constructor(...a) { super(...a); window.__sockets.push(this); }
    addEventListener(type, fn, opts) {
      if (type === 'message') {
        return super.addEventListener(type, (ev) => {
          if (window.__loseFrames > 0) { window.__loseFrames--; return; }
          fn(ev);
        }, opts);
      }
      if (type === 'close') {
        return super.addEventListener(type, (ev) => fn(this.__dropped
          ? {type: 'close', target: this, code: 1006, reason: 'dropped by the test', wasClean: false} : ev), opts);
      }
      return super.addEventListener(type, fn, opts);
    }
  }
  window.WebSocket = Hooked;
  window.__dropSocket = () => { const s = window.__sockets.at(-1); if (s) { s.__dropped = true; s.close(3000); } };
})();"""

SNAPSHOT = """() => {
  const q = (s) => document.querySelector(s);
  const text = (s) => { const e = q(s); return e ? e.innerText.trim() : null; };
  const detail = q('#step-detail');
  return {
    rows: [...document.querySelectorAll('#step-rows > .row')].map((r) => ({
      id: r.dataset.step, status: r.dataset.status, depth: r.dataset.depth, parent: r.dataset.parent,
      summary: r.querySelector('.r-sum').textContent.trim(), fx: r.querySelector('.r-fx').innerHTML,
      ms: r.querySelector('.r-ms').textContent.trim()})),
    state: q('#run-state') && q('#run-state').dataset.runState,
    status: text('#run-status'), totals: text('#run-totals'), count: text('#step-count'),
    selected: q('#ide').dataset.selected,
    detailStep: q('#detail') ? q('#detail').dataset.step : null,
    detail: detail ? detail.innerText.replace(/\\s+/g, ' ').trim() : null,
    pause: q('#pause-box') ? [q('#pause-box').dataset.point, q('#pause-box').dataset.step] : null,
  };
}"""

# (rows as text: off-screen rows skip rendering, content-visibility, so innerText is empty)
# the server's own rendering of every row (the window endpoint), parsed like the page's rows
TRUTH_ROWS = """async (base) => {
  const resp = await fetch(base + '/window/?after=-1&limit=200', {credentials: 'same-origin'});
  const tpl = document.createElement('template');
  tpl.innerHTML = await resp.text();
  return [...tpl.content.querySelectorAll('.row')].map((r) => ({
    id: r.dataset.step, status: r.dataset.status, depth: r.dataset.depth, parent: r.dataset.parent,
    summary: r.querySelector('.r-sum').textContent.trim(), fx: r.querySelector('.r-fx').innerHTML,
    ms: r.querySelector('.r-ms').textContent.trim()}));
}"""


def chain_demo(n: int) -> dict:
    texts = [f"(def a{i} {i}) '(!extend)" for i in range(n - 1)] + ["(str \"done \" a0)"]
    return {"order": 90, "title": f"chain{n}", "prompt": f"A chain of {n} steps.",
            "completions": [{"text": t, "latency": 0} for t in texts]}


def spit_demo(n: int) -> dict:
    texts = [f"'(!call-now w{i} (io/spit \"log.txt\" \"line {i}\\n\" {{:append true}}))" for i in range(n - 1)]
    return {"order": 91, "title": f"spit{n}", "prompt": f"Append {n - 1} lines.", "workspace": True,
            "completions": [{"text": t, "latency": 0} for t in texts + ["(:ok w0)"]]}


def budget_demo() -> dict:
    """Each model call costs a cent: a budget of 1.5 cents stops the run before its third."""
    usage = {"input_tokens": 10, "output_tokens": 10, "cost": 0.01}
    return {"order": 92, "title": "budget", "prompt": "Spend.",
            "completions": [{"text": f"(def c{i} {i}) '(!extend)", "latency": 0, "usage": usage}
                            for i in range(5)] + [{"text": "c0", "usage": usage}]}


def make_demos(root: Path) -> Path:
    demos = root / "demos"
    shutil.copytree(ROOT / "spellide" / "demos", demos)
    (demos / "chain60.json").write_text(json.dumps(chain_demo(60)), encoding="utf-8")
    (demos / "spit120.json").write_text(json.dumps(spit_demo(120)), encoding="utf-8")
    (demos / "budget.json").write_text(json.dumps(budget_demo()), encoding="utf-8")
    return demos


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (./dev test installs it)")
    work = tmp_path_factory.mktemp("live-fresh")
    srv = AppServer(work, extra_env={"SPELLIDE_DEMOS_DIR": str(make_demos(work))}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def context(browser, app):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_init_script(SOCKET_HOOKS)
    pg = ctx.new_page()
    login(pg, app)
    pg.close()
    yield ctx
    ctx.close()


@pytest.fixture(params=["idle", "loaded"])
def load(request):
    """Both cores busy ("loaded"): where the earlier bugs hid."""
    procs = []
    if request.param == "loaded":
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield request.param
    for p in procs:
        p.kill()
        p.wait()


@contextmanager
def watching(context, url: str | None = None):
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(f"pageerror: {e}"))
    if url:
        pg.goto(url)
    try:
        yield pg
    finally:
        pg.close()


def post(context, app: AppServer, path: str, form: dict) -> str:
    """A form POST as the signed-in user; returns where it redirects (a new run's page)."""
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    r = context.request.post(app.url + path, form=form, max_redirects=0,
                             headers={"X-CSRFToken": token, "Referer": app.url + "/"})
    assert r.status in (200, 302, 303), (r.status, r.text()[:500])
    where = r.headers.get("hx-redirect") or r.headers.get("location")
    return app.url + where if where and where.startswith("/") else where


def start(context, app, page, **form) -> str:
    """Start a run and open its page at once (the run streams while the page loads)."""
    url = post(context, app, "/runs/start/", form)
    assert re.search(r"/runs/[0-9a-f-]{36}/$", url), url
    page.goto(url)
    return url


def run_base(url: str) -> str:
    return re.search(r"(.*/runs/[0-9a-f-]{36})", url).group(1)


def server_status(context, url: str) -> dict:
    return context.request.get(run_base(url) + "/status.json").json()


def settled(page, context, states=TERMINAL, timeout: float = 60.0) -> dict:
    """Wait until the run is in one of ``states`` on the server, the page has applied its last
    event and nothing is being applied or loaded; returns the server's status."""
    deadline = time.monotonic() + timeout
    while True:
        st = server_status(context, page.url)
        if st["status"] in states:
            ok = page.evaluate("""(seq) => {
              const live = document.querySelector('#live'), ide = document.querySelector('#ide');
              return !!live && +live.dataset.seq === seq && ide.dataset.settled === '1';
            }""", st["last_seq"])
            if ok:
                page.wait_for_timeout(150)      # anything scheduled by the last apply
                if page.evaluate("document.querySelector('#ide').dataset.settled") == "1":
                    return st
        assert time.monotonic() < deadline, f"the page did not settle: server {st}, page {snapshot(page)}"
        page.wait_for_timeout(100)


def snapshot(page) -> dict:
    return page.evaluate(SNAPSHOT)


def assert_live_equals_fresh(context, live) -> dict:
    """The invariant, for the page ``live`` (settled): a fresh load of its URL shows the same."""
    seen = snapshot(live)
    truth = live.evaluate(TRUTH_ROWS, run_base(live.url))
    with watching(context, live.url) as fresh:
        fresh.wait_for_selector("#run-state")
        again = snapshot(fresh)
    ids = [r["id"] for r in seen["rows"]]
    assert len(ids) == len(set(ids)), f"a row twice: {ids}"
    assert ids == sorted(ids, key=int), ids
    by_id = {r["id"]: r for r in truth}
    first, last = (int(ids[0]), int(ids[-1])) if ids else (0, -1)
    expected = [r for r in truth if first <= int(r["id"]) <= last]
    if seen["rows"] != expected:
        first_bad = next(a["id"] for a, b in zip(seen["rows"], expected) if a != b)
        html = live.evaluate("(id) => document.getElementById('step-row-' + id).outerHTML", first_bad)
        raise AssertionError(_row_diff(seen["rows"], expected) + f"\nlive row: {html}")
    assert [r for r in again["rows"] if r["id"] in by_id] == again["rows"]
    fresh_ids = [r["id"] for r in again["rows"]]
    assert set(fresh_ids) <= set(ids), f"the live page lacks rows a fresh load has: live {ids}, fresh {fresh_ids}"
    assert [r for r in seen["rows"] if r["id"] in {x["id"] for x in again["rows"]}] == again["rows"]
    for key in ("state", "status", "totals", "count", "selected", "detailStep", "detail", "pause"):
        assert seen[key] == again[key], f"{key}: live {seen[key]!r} != fresh {again[key]!r}"
    assert not live.errors, live.errors
    return seen


def _row_diff(live: list, fresh: list) -> str:
    a, b = {r["id"]: r for r in live}, {r["id"]: r for r in fresh}
    diff = [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b), key=int) if a.get(k) != b.get(k)]
    return f"{len(diff)} rows differ, first: {diff[:3]}"


def event_numbers(app: AppServer, url: str) -> list[int]:
    """The run's stored event numbers, from the server's database file."""
    public_id = re.search(r"/runs/([0-9a-f-]{36})", url).group(1).replace("-", "")
    with sqlite3.connect(app.workdir / "app.sqlite3") as con:
        return [s for (s,) in con.execute(
            "select e.seq from web_runevent e join web_run r on r.id = e.run_id where r.public_id = ? "
            "order by e.seq", (public_id,))]


# --- scenarios ----------------------------------------------------------------------------------
@pytest.mark.parametrize("demo", BUNDLED)
def test_every_bundled_demo(context, app, demo):
    with watching(context) as live:
        start(context, app, live, demo=demo)
        settled(live, context)
        assert_live_equals_fresh(context, live)


def test_the_hello_model(context, app, load):
    with watching(context) as live:
        start(context, app, live, prompt="Say hello.", model="hello")
        settled(live, context)
        seen = assert_live_equals_fresh(context, live)
        assert seen["state"] == "finished"


def test_a_60_step_chain_with_no_model_latency_and_a_second_viewer(context, app, load):
    with watching(context) as live:
        url = start(context, app, live, demo="chain60")
        with watching(context, url) as second:
            settled(live, context)
            settled(second, context)
            seen = assert_live_equals_fresh(context, live)
            assert_live_equals_fresh(context, second)
        assert seen["state"] == "finished" and len(seen["rows"]) == 60
        assert {r["status"] for r in seen["rows"]} == {"continued", "completed"}
        assert seen["selected"] == "59" and seen["detailStep"] == "59"


def test_a_fork_from_the_middle_of_a_run(context, app, load):
    with watching(context) as live:
        parent = start(context, app, live, demo="chain60")
        settled(live, context)
        fork = post(context, app, run_base(parent).removeprefix(app.url) + "/fork/", {"step": "30"})
        live.goto(fork)
        settled(live, context)
        seen = assert_live_equals_fresh(context, live)
        assert seen["state"] == "finished"
        assert "fx-hit" in seen["rows"][0]["fx"]          # replayed from the cache


def test_a_page_closed_and_reopened_mid_run(context, app, load):
    with watching(context) as first:
        url = start(context, app, first, demo="spit120")
        first.wait_for_function("() => document.querySelectorAll('#step-rows > .row').length >= 5")
    reopened = 0
    while server_status(context, url)["status"] not in TERMINAL and reopened < 3:
        with watching(context, url) as again:
            again.wait_for_timeout(150)
            reopened += 1
    with watching(context, url) as last:
        settled(last, context)
        seen = assert_live_equals_fresh(context, last)
    assert seen["state"] == "finished"


def test_a_socket_dropped_and_frames_lost_mid_run(context, app, load):
    with watching(context) as live:
        start(context, app, live, demo="spit120")
        live.wait_for_function("() => document.querySelectorAll('#step-rows > .row').length >= 5")
        live.evaluate("window.__dropSocket()")               # the page reconnects and reloads its state
        live.wait_for_function("() => window.__sockets.length >= 2", timeout=15_000)
        live.wait_for_timeout(200)
        live.evaluate("window.__loseFrames = 3")              # a gap: the page must notice it
        settled(live, context)
        seen = assert_live_equals_fresh(context, live)
    assert seen["state"] == "finished" and len(seen["rows"]) == int(seen["count"]) > 50


def test_the_last_frames_of_a_run_lost(context, app):
    """No later frame shows the gap when the end of a stream is lost: the server's heartbeat
    (its newest event number) does, and the page loads its state."""
    with watching(context) as live:
        url = start(context, app, live, demo="spit120")
        live.wait_for_function("() => document.querySelectorAll('#step-rows > .row').length >= 5")
        live.evaluate("window.__loseFrames = 1e9")          # everything from here on
        deadline = time.monotonic() + 60
        while server_status(context, url)["status"] not in TERMINAL:
            assert time.monotonic() < deadline
            live.wait_for_timeout(100)
        live.wait_for_timeout(300)
        live.evaluate("window.__loseFrames = 0")
        settled(live, context, timeout=20.0)
        seen = assert_live_equals_fresh(context, live)
    assert seen["state"] == "finished" and len(seen["rows"]) == int(seen["count"]) > 50


def test_pause_edit_resume_step_and_stop(context, app):
    """At every pause the live page equals a fresh one; Step from before the model call stops
    once (before the next step's model call, not before this one's effect); after Stop every
    step and the run agree and the control's answer goes away."""
    with watching(context) as live:
        start(context, app, live, demo="countdown", bp_before_model="on")
        settled(live, context, states=("paused",))
        seen = assert_live_equals_fresh(context, live)
        assert seen["pause"] == ["before_model", "0"] and seen["rows"][0]["summary"] == "paused"
        editor = live.locator("#edit-text")
        editor.fill(editor.input_value() + "(def human-edit 42) ")
        live.click("#edit-form button[value=continue]")
        live.wait_for_selector("#pause-box[data-step='1']")
        settled(live, context, states=("paused",))
        assert_live_equals_fresh(context, live)
        live.click("#pause-box form[action$='/step/'] button")
        live.wait_for_selector("#pause-box[data-point='after_completion']")
        settled(live, context, states=("paused",))
        seen = assert_live_equals_fresh(context, live)
        assert seen["pause"] == ["after_completion", "1"], seen["pause"]   # one model call, one stop
        live.click("#pause-box form[action$='/stop/'] button")
        settled(live, context)
        seen = assert_live_equals_fresh(context, live)
        assert seen["state"] == "stopped"
        assert not [r for r in seen["rows"] if r["status"] in ("running", "paused")], seen["rows"]
        live.wait_for_function("() => !document.querySelector('#run-controls').innerText.includes('stop requested')",
                               timeout=6000)


def test_a_run_stopped_by_its_budget(context, app):
    with watching(context) as live:
        start(context, app, live, demo="budget", budget="0.015")
        settled(live, context)
        seen = assert_live_equals_fresh(context, live)
    assert seen["state"] == "stopped" and seen["status"].lower().startswith("stopped by budget"), seen["status"]
    assert not [r for r in seen["rows"] if r["status"] in ("running", "paused")], seen["rows"]


def test_a_server_killed_mid_run_then_the_run_resumed(tmp_path_factory, browser):
    """kill -9 of the server mid-run: the open page reconnects to the restarted server and shows
    the run interrupted, as a fresh load does; resumed, it finishes, and its event numbers have
    no gap."""
    work = tmp_path_factory.mktemp("live-kill")
    srv = AppServer(work, extra_env={"SPELLIDE_DEMOS_DIR": str(make_demos(work))}).start()
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        pg = ctx.new_page()
        login(pg, srv)
        pg.close()
        with watching(ctx) as live:
            url = start(ctx, srv, live, demo="spit120")
            live.wait_for_function("() => document.querySelectorAll('#step-rows > .row').length >= 15")
            srv.proc.kill()
            srv.proc.wait(10)
            srv.start()                                    # the same port: the page reconnects
            settled(live, ctx, states=("interrupted",))
            seen = assert_live_equals_fresh(ctx, live)
            assert not [r for r in seen["rows"] if r["status"] in ("running", "paused")], seen["rows"]
            live.click("#run-controls form[action$='/resume-interrupted/'] button")
            settled(live, ctx, timeout=90)
            seen = assert_live_equals_fresh(ctx, live)
            assert seen["state"] == "finished" and len(seen["rows"]) == int(seen["count"]) > 50
        seqs = event_numbers(srv, url)
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        ctx.close()
        srv.stop()


def test_the_step_list_opens_steps_in_every_view(context, app):
    """In the effect cache, fork tree and setup views a click on a row, or j/k, opens that step."""
    with watching(context) as page:
        url = start(context, app, page, demo="countdown")
        settled(page, context)
        for view in ("effects", "forks", "setup"):
            page.goto(run_base(url) + f"/{view}/")
            page.click("#step-row-3")
            page.wait_for_url(re.compile(r".*/steps/3/$"))
            page.wait_for_selector("#detail[data-step='3']")
            page.goto(run_base(url) + f"/{view}/")
            page.keyboard.press("k")              # from the step the view's list marks (the last)
            page.wait_for_url(re.compile(r".*/steps/9/$"))
            page.wait_for_selector("#detail[data-step='9']")
        assert not page.errors, page.errors
