"""IDE overhead (figures, not a test): the same 1,000-step scripted run

  * headless in the runtime (``spellide.spell.machine.Run.execute``, no listener), and
  * through the IDE's run service: a child process, every event persisted (RunEvent + Step /
    ProgramVersion / Effect rows, Run status and totals, SQLite file database in WAL mode),
    rendered to HTML fragments and broadcast, with one websocket client connected
    (channels' WebsocketCommunicator on the real ASGI application, reading every frame).

The IDE time runs from ``start_run`` to the client holding the ``run_finished`` frame. Runs
alternate (headless, IDE, headless, ...) and the medians are compared; target ratio <= 1.5.

``--browser``: the IDE side is the real thing end to end instead: daphne serving the app in a
subprocess and Chromium showing the run page (rendering every row as it streams in), started
from the page's own form; timed from the click to the page showing "finished". Both share the
machine's two cores with the run, as they would on a developer's machine.

Usage: .venv/bin/python bench/ide_overhead.py [--steps 1000] [--repeats 3] [--browser] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.django_env import setup_django  # noqa: E402

TMP = setup_django()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from spellide.spell.api import Run as SpellRun, RunConfig, execute_with_deep_stack  # noqa: E402
from spellide.web import runner  # noqa: E402
from spellide.web.asgi import application  # noqa: E402
from spellide.web.models import Effect, ProgramVersion, Run, RunEvent  # noqa: E402

def script_file(steps: int) -> Path:
    completions = [f'(def v{i} "step {i:05d} padding text.") \'(!extend)' for i in range(steps - 1)]
    completions.append("(count [v1 v2])")
    p = TMP / f"chain-{steps}.json"
    p.write_text(json.dumps({"completions": completions}), encoding="utf-8")
    return p


def config(path: Path) -> RunConfig:
    return RunConfig(prompt="Grow.", model=f"scripted:{path}", recover=False, budget=None)


def headless(path: Path) -> float:
    run = SpellRun(config(path))
    t0 = time.perf_counter()
    result = execute_with_deep_stack(run.execute)
    dt = time.perf_counter() - t0
    assert result.error is None, result.error
    return dt


def cpu_and_wall(fn, *args):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - c0, time.perf_counter() - w0


async def through_ide(path: Path, user, cookie: bytes) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    run = await sync_to_async(runner.start_run)(user, config(path), "bench")
    comm = WebsocketCommunicator(application, f"/ws/runs/{run.public_id}/?last_seq=0",
                                 headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"),
                                          (b"cookie", cookie)])
    connected, _ = await comm.connect(timeout=30)
    assert connected
    frames = 0
    last_seq = 0
    final_seq = None
    while final_seq is None or last_seq < final_seq:
        # wait on the communicator's queue directly: its receive timeout would cancel the consumer
        try:
            message = await asyncio.wait_for(comm.output_queue.get(), timeout=0.2)
        except asyncio.TimeoutError:
            message = None
        if message is not None:
            frames += 1
            for m in re.finditer(r'data-seq="(\d+)"', message.get("text") or ""):
                last_seq = max(last_seq, int(m.group(1)))
        if final_seq is None and runner.get_active(run) is None:
            final_seq = await sync_to_async(lambda: Run.objects.get(pk=run.pk).last_seq)()
    dt = time.perf_counter() - t0
    await comm.disconnect()
    await asyncio.to_thread(runner.wait_for, run, 60)
    final = await sync_to_async(Run.objects.get)(pk=run.pk)
    assert final.status == "finished", final.error
    return dt, frames, final.last_seq


def browser_runs(steps: int, repeats: int, heads: list[float]) -> list[float]:
    """Alternating with headless runs: the same script as a demo agent of a daphne-served app,
    started and watched in Chromium."""
    from tests.browser.server import AppServer, launch, login

    demos = TMP / "demos"
    demos.mkdir(exist_ok=True)
    script = json.loads(script_file(steps).read_text(encoding="utf-8"))
    (demos / "overhead.json").write_text(json.dumps({
        "title": "overhead bench", "prompt": "Grow.", "completions": script["completions"],
        "config": {"budget": 0, "recover": False}}), encoding="utf-8")
    server = AppServer(TMP / "app", settings_module="bench.bench_settings",
                       extra_env={"SPELLIDE_BENCH_DEMOS": str(demos)}).start()
    ides: list[float] = []
    try:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            login(page, server)
            for _ in range(repeats):
                heads.append(headless(script_file(steps)))
                page.goto(server.url + "/")
                t0 = time.perf_counter()
                page.locator("form:has(input[name=demo][value='overhead']) button").click()
                page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}/$"))
                page.wait_for_function("() => document.querySelector('#run-state')?.dataset.state === 'finished'",
                                       timeout=600_000, polling=100)
                ides.append(time.perf_counter() - t0)
            browser.close()
    finally:
        server.stop()
    return ides


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--browser", action="store_true", help="daphne + Chromium instead of an in-process client")
    args = ap.parse_args()
    if args.browser:
        headless(script_file(20))  # warm up
        heads: list[float] = []
        ides = browser_runs(args.steps, args.repeats, heads)
        paired = statistics.median(b / a for a, b in zip(heads, ides))
        h, i = statistics.median(heads), statistics.median(ides)
        out = {"steps": args.steps, "repeats": args.repeats, "mode": "daphne + chromium",
               "headless_s": [round(x, 3) for x in heads], "ide_s": [round(x, 3) for x in ides],
               "ratio": round(i / h, 3), "paired_ratio_median": round(paired, 3)}
        if args.json:
            print(json.dumps(out))
            return
        print(f"{args.steps}-step scripted run, {args.repeats} repeats (alternating), IDE = daphne + Chromium")
        print(f"  headless runtime : median {h:.3f} s  {out['headless_s']}")
        print(f"  IDE in a browser : median {i:.3f} s  {out['ide_s']}")
        print(f"  ratio IDE/headless: {i / h:.2f}x wall (median of paired runs {paired:.2f}x; target <= 1.5x)")
        return

    call_command("migrate", verbosity=0)
    User = get_user_model()
    user = User.objects.create_user("bench", password="bench-password-1")
    c = Client()
    c.force_login(user)
    cookie = f"sessionid={c.cookies['sessionid'].value}".encode()
    path = script_file(args.steps)

    headless(script_file(20))  # warm up imports and caches
    heads: list[float] = []
    ides: list[float] = []
    frames = events = 0
    head_cpu: list[float] = []
    ide_cpu: list[float] = []
    for _ in range(args.repeats):
        dt, cpu, _ = cpu_and_wall(headless, path)
        heads.append(dt)
        head_cpu.append(cpu)
        (dt, frames, events), cpu, _ = cpu_and_wall(lambda: asyncio.run(through_ide(path, user, cookie)))
        ides.append(dt)
        ide_cpu.append(cpu)
    h, i = statistics.median(heads), statistics.median(ides)
    # the runs alternate, so a pair shares the machine's load of the moment: the median of
    # the per-pair ratios is steadier on a shared machine than the ratio of the medians
    paired = statistics.median(b / a for a, b in zip(heads, ides))
    last = Run.objects.order_by("-id").first()
    stored = sum(len(t) for t in ProgramVersion.objects.filter(run=last).values_list("tail", flat=True))
    out = {
        "steps": args.steps, "repeats": args.repeats,
        "headless_s": [round(x, 3) for x in heads], "ide_s": [round(x, 3) for x in ides],
        "headless_median_s": round(h, 3), "ide_median_s": round(i, 3), "ratio": round(i / h, 3),
        "paired_ratio_median": round(paired, 3),
        "headless_cpu_median_s": round(statistics.median(head_cpu), 3),
        "ide_cpu_median_s": round(statistics.median(ide_cpu), 3),
        "cpu_ratio": round(statistics.median(ide_cpu) / statistics.median(head_cpu), 3),
        "events_per_run": events, "ws_frames_per_run": frames,
        "effects_per_run": Effect.objects.filter(run=last).count(),
        "program_chars_stored_per_run": stored,
        "db_bytes": os.path.getsize(TMP / "bench.sqlite3"),
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"{args.steps}-step scripted run, {args.repeats} repeats (alternating)")
    print(f"  headless runtime : median {h:.3f} s  {out['headless_s']}")
    print(f"  through the IDE  : median {i:.3f} s  {out['ide_s']}  "
          f"({events} events persisted, {frames} websocket frames, {out['effects_per_run']} effect rows)")
    print(f"  ratio IDE/headless: {i / h:.2f}x wall (median of paired runs {paired:.2f}x; target <= 1.5x); "
          f"{out['cpu_ratio']:.2f}x process CPU ({out['ide_cpu_median_s']} s vs {out['headless_cpu_median_s']} s)")
    print(f"  program text stored per run: {stored} chars (delta-chained versions)")


if __name__ == "__main__":
    main()
