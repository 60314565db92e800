"""Streamed model text to the browser (figures, not tests).

A provider-backed run in the IDE, end to end: daphne serves the app in a subprocess, the app
calls a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/providers/servers.py) with a
streaming request, and real Chromium shows the step. For each run the server notes the wall
time at which it wrote the first content piece; the page notes when that text appeared in the
step's live strip (a MutationObserver, ``performance.timeOrigin + now()``; same machine, same
clock). That spans the provider's stream parsing, the event, its persistence and rendering,
the channel layer, the websocket and htmx's swap.

Baseline, measured in the same run against the same server: a raw streaming ``httpx`` reader
seeing the first piece (the floor any client pays).

Usage: .venv/bin/python bench/stream_to_browser.py [--runs 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.server import AppServer, launch, login  # noqa: E402
from tests.browser.test_ide import start_run, wait_state  # noqa: E402
from tests.providers.servers import ModelServer, Reply  # noqa: E402

ANSWER = '(str "the first piece " "and then the rest " "of a streamed answer")'

# Installed before the page's own scripts: notes when each step's live text first shows.
OBSERVER = """
window.__firstText = {};
new MutationObserver(() => {
  const t = performance.timeOrigin + performance.now();
  for (const el of document.querySelectorAll('pre[id^="live-"][id$="-completion"]'))
    if (el.textContent.length && !(el.id in window.__firstText)) window.__firstText[el.id] = t;
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


def raw_first_piece(srv: ModelServer) -> float:
    """Seconds from the server writing the first content piece to a raw reader seeing it."""
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client() as c, c.stream("POST", srv.openai_url + "/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                return time.time() - srv.first_piece_wall[-1]
    raise RuntimeError("no content piece")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # the stall before the stream lets the page load the running step's detail first, so the
    # first piece travels the live path (websocket fragment), not a page render
    srv = ModelServer(default=Reply(text=ANSWER, chunk=8, stall=1.0, stall_after=0,
                                    delay_between=0.02)).start()
    tmp = Path(tempfile.mkdtemp(prefix="spellide-stream-"))
    profiles = tmp / "models.toml"
    profiles.write_text(f'[profiles.bench]\nprovider = "openai"\nbase_url = "{srv.openai_url}"\n'
                        f'model = "fake-model"\ntransport = "message"\napi_key_env = "SPELLIDE_BENCH_KEY"\n')
    app = AppServer(tmp / "app", extra_env={"SPELLIDE_MODELS": str(profiles),
                                            "SPELLIDE_BENCH_KEY": "sk-bench"}).start()
    ide_ms, raw_ms = [], []
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            page.add_init_script(OBSERVER)
            login(page, app)
            for _ in range(args.runs):
                srv.reset()
                start_run(page, app, prompt="Stream an answer.", model="profile:bench")
                wait_state(page, "finished", timeout=60)
                seen = page.evaluate("window.__firstText")
                if "live-0-completion" in seen and srv.first_piece_wall:
                    ide_ms.append((seen["live-0-completion"] / 1000 - srv.first_piece_wall[0]) * 1000)
                srv.reset()
                raw_ms.append(raw_first_piece(srv) * 1000)
            browser.close()
    finally:
        app.stop()
        srv.stop()
    if not ide_ms:
        raise SystemExit("the streamed text never showed before the step finished")
    med_ide, med_raw = statistics.median(ide_ms), statistics.median(raw_ms)
    result = {"runs": args.runs, "measured": len(ide_ms),
              "server_to_browser_median_ms": round(med_ide, 1), "server_to_browser_max_ms": round(max(ide_ms), 1),
              "raw_reader_median_ms": round(med_raw, 2), "difference_ms": round(med_ide - med_raw, 1)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"first streamed piece, server -> browser DOM: median {med_ide:.1f} ms, max {max(ide_ms):.1f} ms "
          f"({len(ide_ms)} of {args.runs} runs)")
    print(f"baseline, server -> raw httpx stream reader: median {med_raw:.2f} ms")
    print(f"IDE path adds {med_ide - med_raw:.1f} ms over the raw reader")


if __name__ == "__main__":
    main()
