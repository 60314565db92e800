"""Step event -> DOM latency in a real browser (figures, not a test).

A scripted agent streams steps as fast as the runtime can make them (no model latency after
a 2 s first step that lets the page load and connect). The IDE runs in daphne in a subprocess
(SQLite file database, in-memory channel layer, runs in child processes: the embedded default); one
Chromium page follows the run with the normal UI (auto-follow on).

For every ``step_started`` event: latency = the time its row appeared in the page's DOM (a
MutationObserver timestamp, ``performance.timeOrigin + performance.now()``) minus the time
the runtime emitted the event (the event's ``ts``, ``time.time()`` in the server process;
same machine, same clock). That spans persisting the event, rendering its fragment,
broadcasting it, the websocket, and htmx's swap. Target: p95 under 100 ms.

Usage: .venv/bin/python bench/step_latency.py [--steps 300] [--hold] [--json]
  --hold: hold the feed (no detail reloads while streaming; isolates the event path).
The report also gives the time each frame reached the browser's socket (a wrapped
WebSocket), which separates server-side delay from htmx's swap time.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.server import AppServer, launch, login  # noqa: E402

OBSERVER = """
window.__rows = {};
window.__arrive = {};
document.addEventListener('htmx:ws:before:message:incoming', (e) => {
  const t = performance.timeOrigin + performance.now();
  const m = /id="step-row-(\\d+)"/.exec(e.detail.message.data);
  if (m && !(m[1] in window.__arrive)) window.__arrive[m[1]] = t;
});
new MutationObserver((muts) => {
  const t = performance.timeOrigin + performance.now();
  for (const m of muts) for (const n of m.addedNodes)
    if (n.nodeType === 1 && n.dataset && n.dataset.step !== undefined && !(n.dataset.step in window.__rows))
      window.__rows[n.dataset.step] = t;
}).observe(document.querySelector('#step-rows'), {childList: true});
"""


# Raw socket arrival times, recorded before htmx sees a frame (htmx handles frames one after
# another, so its own events would include the time spent on earlier frames).
RAW_SOCKET = """
window.__raw = {};
const NativeWS = window.WebSocket;
window.WebSocket = function (url, protocols) {
  const ws = new NativeWS(url, protocols);
  ws.addEventListener('message', (e) => {
    const t = performance.timeOrigin + performance.now();
    const re = /id="step-row-(\\d+)"/g; let m;
    while ((m = re.exec(e.data))) if (!(m[1] in window.__raw)) window.__raw[m[1]] = t;
  });
  return ws;
};
window.WebSocket.prototype = NativeWS.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
"""


def write_demo(dir_: Path, steps: int) -> None:
    completions = [{"text": "(def v0 0) '(!extend)", "latency": 2.0}]
    completions += [f"(def v{i} {i}) '(!extend)" for i in range(1, steps - 1)]
    completions.append("(think \"done\") v1")
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / "latency.json").write_text(json.dumps({
        "title": "latency bench", "prompt": "Count as fast as you can.", "completions": completions,
        "config": {"budget": 0}}), encoding="utf-8")


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--hold", action="store_true", help="hold the feed (no detail loads while streaming)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spellide-latency-"))
    write_demo(tmp / "demos", args.steps)
    server = AppServer(tmp / "app", settings_module="bench.bench_settings",
                       extra_env={"SPELLIDE_BENCH_DEMOS": str(tmp / "demos")}).start()
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(RAW_SOCKET)
            login(page, server)
            page.locator("form:has(input[name=demo][value='latency']) button").click()
            page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}/$"))
            page.wait_for_selector("#step-rows", state="attached")
            page.evaluate(OBSERVER)
            if args.hold:
                page.click("#hold-feed")
            public_id = re.search(r"/runs/([0-9a-f-]{36})/", page.url).group(1)
            t0 = time.time()
            page.wait_for_function("() => document.querySelector('#run-state').dataset.state === 'finished'",
                                   timeout=600_000, polling=200)
            wall = time.time() - t0
            page.wait_for_timeout(500)
            dom = page.evaluate("window.__rows")
            arrive = page.evaluate("window.__raw")
            browser.close()
    finally:
        server.stop()
    db = sqlite3.connect(tmp / "app" / "app.sqlite3")
    run_id = db.execute("select id from web_run where public_id = ?", (public_id.replace("-", ""),)).fetchone()
    if run_id is None:
        run_id = db.execute("select id from web_run where public_id = ?", (public_id,)).fetchone()
    events = db.execute("select data, ts from web_runevent where run_id = ? and type = 'step_started' order by seq",
                        (run_id[0],)).fetchall()
    emitted = {str(json.loads(d)["step"]): ts for d, ts in events}
    lat = [(dom[s] / 1000.0 - emitted[s]) * 1000 for s in emitted if s in dom and s != "0"]
    # step 0 may already be in the page the browser loaded (rendered, not pushed)
    missing = [s for s in emitted if s not in dom and s != "0"]
    wire = [(arrive[s] / 1000.0 - emitted[s]) * 1000 for s in emitted if s in arrive and s != "0"]
    result = {
        "steps": len(emitted), "rows_seen": len(dom), "missing_rows": len(missing),
        "median_ms": round(statistics.median(lat), 1), "p95_ms": round(percentile(lat, 0.95), 1),
        "max_ms": round(max(lat), 1), "min_ms": round(min(lat), 1),
        "steps_per_s": round(len(emitted) / wall, 1), "target_p95_ms": 100,
        "to_socket_median_ms": round(statistics.median(wire), 1) if wire else None,
        "to_socket_p95_ms": round(percentile(wire, 0.95), 1) if wire else None,
    }
    order = sorted((int(s), (dom[s] / 1000.0 - emitted[s]) * 1000) for s in emitted if s in dom and s != "0")
    result["trend_ms"] = [round(v) for _, v in order[:: max(1, len(order) // 10)]]
    if args.json:
        print(json.dumps(result))
    else:
        print(f"step_started -> row in the DOM, {result['steps']} steps at {result['steps_per_s']} steps/s "
              f"(scripted model, no latency)")
        print(f"  median {result['median_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms, "
              f"min {result['min_ms']} ms; rows missing: {result['missing_rows']}  (target p95 < 100 ms)")
        print(f"  latency along the run (every tenth step): {result['trend_ms']}")
        print(f"  of which event -> frame arriving at the browser's socket: median {result['to_socket_median_ms']} ms, "
              f"p95 {result['to_socket_p95_ms']} ms")


if __name__ == "__main__":
    main()
