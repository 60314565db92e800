"""A 10,000-step recorded run: time to first render and HTML size (figures, not a test).

Builds a recorded run of N continued steps in a fresh SQLite file database (each step's
program is the previous one plus the model's new forms, stored as delta-chained program
versions, with one effect per step), then measures:

* server render time (Django test client, in process) and HTML bytes of: the run page (opens
  on the last step), a step page in the middle, each tab of that step, and one step-list
  window request;
* in real Chromium against daphne: navigation to the run page and to a middle step page,
  until DOMContentLoaded and until the step list and detail are in the DOM, plus a tab switch.

Targets: first render under 1 s, and HTML bounded by what is on screen (a window of step
rows and one step's detail), not by the run's length; compare with ``--steps 1000``.

Usage: .venv/bin/python bench/big_run_render.py [--steps 10000] [--repeats 3] [--no-browser] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.server import USERNAME, AppServer, launch, login  # noqa: E402


def build(server: AppServer, steps: int) -> tuple[str, float]:
    os.environ.update(server.env)
    import django
    django.setup()
    from django.contrib.auth import get_user_model

    from tests.web.pagedata import make_run
    user = get_user_model().objects.get(username=USERNAME)
    t = time.perf_counter()
    run = make_run(user, steps, title=f"{steps}-step recorded run", bulk=True)
    return str(run.public_id), time.perf_counter() - t


def server_side(public_id: str, steps: int, repeats: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from spellide.web.models import clear_text_cache
    c = Client(HTTP_HOST="127.0.0.1")
    c.force_login(get_user_model().objects.get(username=USERNAME))
    mid = steps // 2
    base = f"/runs/{public_id}"
    urls = {"run page (last step)": f"{base}/", f"step page #{mid}": f"{base}/steps/{mid}/"}
    for tab in ("tree", "source", "diff", "effects", "value"):
        urls[f"tab {tab} #{mid}"] = f"{base}/steps/{mid}/tab/{tab}/"
    urls["tab tree (last step)"] = f"{base}/steps/{steps - 1}/tab/tree/"
    urls["tab source (last step)"] = f"{base}/steps/{steps - 1}/tab/source/"
    urls["window of 60 rows"] = f"{base}/window/?before={mid}"
    out = {}
    for name, url in urls.items():
        times, size = [], 0
        for i in range(repeats):
            if i == 0:
                clear_text_cache()  # first: cold program-text cache
            t = time.perf_counter()
            r = c.get(url)
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (url, r.status_code)
            size = len(r.content)
        out[name] = {"cold_ms": round(times[0], 1), "warm_ms": round(statistics.median(times[1:] or times), 1),
                     "bytes": size}
    return out


def browser_side(server: AppServer, public_id: str, steps: int, repeats: int,
                 screenshot: str = "") -> dict:
    from playwright.sync_api import sync_playwright
    mid = steps // 2
    out = {}
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        login(page, server)
        for name, url, sel in (("run page", f"/runs/{public_id}/", f"#detail[data-step='{steps - 1}']"),
                               (f"step page #{mid}", f"/runs/{public_id}/steps/{mid}/", f"#detail[data-step='{mid}']")):
            loads, dcls, bodies = [], [], []
            for _ in range(repeats):
                t = time.perf_counter()
                page.goto(server.url + url)
                page.wait_for_selector(sel)
                page.wait_for_selector("#step-rows > .row")
                loads.append((time.perf_counter() - t) * 1000)
                nav = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                                    " return [n.domContentLoadedEventEnd, n.encodedBodySize, n.decodedBodySize]; })()")
                dcls.append(nav[0])
                bodies.append(nav[2])
            rows = page.locator("#step-rows > .row").count()
            out[name] = {"visible_ms": round(statistics.median(loads), 1), "dom_content_loaded_ms": round(statistics.median(dcls), 1),
                         "html_bytes": int(statistics.median(bodies)), "rows_in_dom": rows}
        t = time.perf_counter()
        page.click(".tabs .tab[data-tab='diff']")
        page.wait_for_selector(".tab-pane[data-tab='diff']")
        out["tab switch to diff"] = {"ms": round((time.perf_counter() - t) * 1000, 1)}
        if screenshot:
            page.click(".tabs .tab[data-tab='tree']")
            page.wait_for_selector(".tab-pane[data-tab='tree']")
            page.screenshot(path=screenshot)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--screenshot", default="", help="save a screenshot of a step page here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spellide-bigrun-"))
    server = AppServer(tmp / "app")
    server.setup()
    public_id, build_s = build(server, args.steps)
    result = {"steps": args.steps, "build_s": round(build_s, 1),
              "db_bytes": os.path.getsize(tmp / "app" / "app.sqlite3"),
              "server": server_side(public_id, args.steps, args.repeats)}
    if not args.no_browser:
        server.start()
        try:
            result["browser"] = browser_side(server, public_id, args.steps, args.repeats, args.screenshot)
        finally:
            server.stop()
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.steps}-step recorded run (built in {result['build_s']} s, database {result['db_bytes'] / 1e6:.1f} MB)")
    print("  server render (test client)         cold ms   warm ms   HTML bytes")
    for name, r in result["server"].items():
        print(f"    {name:<32} {r['cold_ms']:>8} {r['warm_ms']:>9} {r['bytes']:>12,}")
    if "browser" in result:
        print("  Chromium + daphne (median)")
        for name, r in result["browser"].items():
            print(f"    {name:<32} " + ", ".join(f"{k} {v}" for k, v in r.items()))
    print("  targets: first render < 1 s; HTML bounded by the window + one step's detail")


if __name__ == "__main__":
    main()
