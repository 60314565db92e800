"""Runaway programs against the run limits, through a real IDE server (figures, not a test).

A daphne server of the IDE runs in a subprocess on a free 127.0.0.1 port with a temporary
SQLite database (``tests/browser/server.py``). For each runaway program the bench signs in,
starts the run with the new-run form (memory limit 1024 MB, the default; step time limit
``--step-time``, default 5 s) and meanwhile:

* polls the run's status until it ends: **time to the error** (from the form's POST);
* reads the peak resident size (``VmHWM``) of the run's process (a child of the server's fork
  server) every 20 ms: **peak RSS**;
* requests the run page every 100 ms: the **server's response time** (median and worst).

A row starts an endless loop and presses Stop after 1 s: time from Stop to *stopped*. The
last row is the same page requests for 5 s with no run executing: the server's response time on
this machine as loaded at the moment, to compare against.

Targets (issue 11): every runaway ends within 10 s or at its memory limit, the peak RSS stays
under 1.2x the limit, the server answers in < 200 ms throughout.

Usage: .venv/bin/python bench/limits.py [--repeats 3] [--step-time 5] [--json]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.server import PASSWORD, USERNAME, AppServer  # noqa: E402

MEMORY_MB = 1024
RUNAWAYS = [
    ("string doubling", '(loop [s "x" i 0] (if (< i 34) (recur (str s s) (inc i)) (count s)))'),
    ("vector doubling", "(loop [v [1] i 0] (if (< i 40) (recur (into v v) (inc i)) (count v)))"),
    ("nested maps", "(loop [m {:a 1} i 0] (if (< i 40) (recur {:a m :b m} (inc i)) (count (str m))))"),
    ("regex (a+)+$, 30 a", '(re-find #"(a+)+$" "' + "a" * 30 + '!")'),
    ("regex (a|aa)+$, 44 a", '(re-find #"(a|aa)+$" "' + "a" * 44 + '!")'),
    ("deep recursion", "(do (defn f [n] (inc (f n))) (f 0))"),
    ("10^8-step loop", "(loop [i 0] (if (< i 100000000) (recur (inc i)) i))"),
]
ENDLESS = "(loop [i 0] (if (< i 1000000000000) (recur (inc i)) i))"
TERMINAL = ("finished", "failed", "stopped", "interrupted", "diverged")


class Client:
    """A signed-in HTTP client of the server (session cookie + CSRF token)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.base + path, timeout=30) as r:
            return r.status, r.read().decode("utf-8", "replace")

    def csrf(self) -> str:
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def post(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": self.csrf()}).encode()
        req = urllib.request.Request(self.base + path, body, headers={"Referer": self.base + "/"})
        with self.opener.open(req, timeout=30) as r:
            return r.status, r.geturl()

    def login(self) -> None:
        self.get("/accounts/login/")
        self.post("/accounts/login/", {"username": USERNAME, "password": PASSWORD})


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _peak_rss_kb(pid: int) -> Optional[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_processes(server_pid: int) -> set[int]:
    """The run processes: children of the server's fork server (the server's child whose
    command line names multiprocessing's forkserver)."""
    out: set[int] = set()
    for child in _children(server_pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"forkserver" in cmd:
            out.update(_children(child))
    return out


def measure(client: Client, server_pid: int, program: str, step_time: float,
            stop_after: Optional[float] = None) -> dict[str, Any]:
    before = run_processes(server_pid)
    t0 = time.monotonic()
    _, url = client.post("/runs/start/", {"program": program, "model": "hello", "title": "limits bench",
                                          "memory_mb": str(MEMORY_MB), "step_time": f"{step_time:g}"})
    public_id = re.search(r"/runs/([0-9a-f-]{36})/", url).group(1)
    page = f"/runs/{public_id}/"
    peak = [0]
    response_ms: list[float] = []
    done = threading.Event()

    def watch_rss() -> None:
        while not done.is_set():
            for pid in run_processes(server_pid) - before:
                kb = _peak_rss_kb(pid)
                if kb:
                    peak[0] = max(peak[0], kb)
            time.sleep(0.02)

    def poll_page() -> None:
        while not done.is_set():
            s = time.monotonic()
            status, _ = client.get(page)
            response_ms.append((time.monotonic() - s) * 1000)
            assert status == 200
            time.sleep(0.1)

    threads = [threading.Thread(target=watch_rss, daemon=True), threading.Thread(target=poll_page, daemon=True)]
    for t in threads:
        t.start()
    stopped_at = None
    while True:
        state = json.loads(client.get(f"/runs/{public_id}/status.json")[1])
        now = time.monotonic()
        if state["status"] in TERMINAL:
            break
        if stop_after is not None and stopped_at is None and now - t0 > stop_after:
            client.post(f"/runs/{public_id}/stop/", {})
            stopped_at = time.monotonic()
        if now - t0 > 600:
            raise RuntimeError(f"the run did not end in 600 s: {state}")
        time.sleep(0.05)
    end = time.monotonic()
    done.set()
    for t in threads:
        t.join()
    return {"seconds": round(end - (stopped_at or t0), 2), "status": state["status"],
            "error": state["error"], "peak_rss_mb": round(peak[0] / 1024, 1),
            "response_ms_median": round(statistics.median(response_ms), 1) if response_ms else None,
            "response_ms_max": round(max(response_ms), 1) if response_ms else None,
            "page_requests": len(response_ms)}


def idle(client: Client, page: str, seconds: float = 5.0) -> dict[str, Any]:
    response_ms = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s = time.monotonic()
        client.get(page)
        response_ms.append((time.monotonic() - s) * 1000)
        time.sleep(0.1)
    return {"seconds": 0.0, "status": "-", "error": "no run executing", "peak_rss_mb": 0.0,
            "response_ms_median": round(statistics.median(response_ms), 1),
            "response_ms_max": round(max(response_ms), 1), "page_requests": len(response_ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--step-time", type=float, default=5.0)
    ap.add_argument("--only", help="run only the runaways whose name contains this")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cases = [(n, p, None) for n, p in RUNAWAYS] + [("Stop after 1 s", ENDLESS, 1.0)]
    if args.only:
        cases = [c for c in cases if args.only in c[0]]
    server = AppServer(Path(tempfile.mkdtemp(prefix="spellide-limits-"))).start()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in cases}
    rows["no run (baseline)"] = []
    try:
        client = Client(server.url)
        client.login()
        _, url = client.post("/runs/start/", {"program": "(+ 1 2)", "model": "hello"})   # warm up
        page = urllib.parse.urlparse(url).path
        for _ in range(args.repeats):
            for name, program, stop_after in cases:
                rows[name].append(measure(client, server.proc.pid, program, args.step_time, stop_after))
            rows["no run (baseline)"].append(idle(client, page))
    finally:
        server.stop()
    summary = {}
    for name, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in
               ("seconds", "peak_rss_mb", "response_ms_median", "response_ms_max")}
        summary[name] = {**med, "status": runs[-1]["status"], "error": runs[-1]["error"],
                         "runs": runs}
    if args.json:
        print(json.dumps({"memory_mb": MEMORY_MB, "step_time": args.step_time, "repeats": args.repeats,
                          "cases": summary}))
        return
    print(f"runaways through the IDE: memory limit {MEMORY_MB} MB, step time limit {args.step_time:g} s; "
          f"medians of {args.repeats} runs")
    print(f"  {'program':22} {'to the error':>12} {'peak RSS':>10} {'page median':>12} {'page worst':>11}  ending")
    for name, s in summary.items():
        ending = (s["error"] or s["status"])[:70]
        print(f"  {name:22} {s['seconds']:>10.2f} s {s['peak_rss_mb']:>7.0f} MB {s['response_ms_median']:>9.1f} ms "
              f"{s['response_ms_max']:>8.1f} ms  {s['status']}: {ending}")
    worst_page = max(s["response_ms_max"] for n, s in summary.items() if n != "no run (baseline)")
    worst_rss = max(s["peak_rss_mb"] for s in summary.values())
    print(f"  targets: <= 10 s or at the memory limit; peak RSS < {1.2 * MEMORY_MB:.0f} MB (worst median "
          f"{worst_rss:.0f} MB); page < 200 ms (worst median {worst_page:.1f} ms)")


if __name__ == "__main__":
    main()
