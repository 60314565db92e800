"""Turn-machine benchmarks (figures, not tests).

1. Machine overhead per step (everything but the model) for a 1,000-step scripted run whose
   program grows to about 50 KB, against the baseline of evaluating each step's program alone
   (reader + evaluator, no machine), measured in the same run. Each turn re-evaluates its
   whole program (the language's semantics), so a step's time grows with the program however
   the machine works; the machine's own part is the step's time minus evaluating its program,
   and that is compared between the first 100 steps (~2 KB) and the last 100 (~54 KB).
   Also: the same scripted chain through the CLI (a fresh process each), 1,000 steps against
   250.
2. A 10,000-step extension chain: wall time and peak memory, against a 1,000-step chain in the
   same run (memory must follow the live program, not the history).
3. Strict replay of a recorded 1,000-step run, and a fork of it from its middle step, against
   the original run.

Usage: .venv/bin/python bench/runtime_bench.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spellide.spell.api import (Completion, ModelRequest, Record, Run, RunConfig, Usage,  # noqa: E402
                                events as ev, evaluate, execute_with_deep_stack, read_one)


def growing_completion(i: int, steps: int) -> str:
    """The i-th completion of a ``steps``-step run that appends ~50 characters a step."""
    if i >= steps - 1:
        return "(count [v1 v2])"
    return f'(def v{i} "step {i:05d} padding text.") \'(!extend)'


class GrowingModel:
    """Each turn appends ~50 characters and extends; the last turn returns a value."""

    name = "bench"
    transport = "prefill"

    def __init__(self, steps: int):
        self.steps = steps

    def complete(self, request: ModelRequest) -> Completion:
        return Completion(growing_completion(request.extra["call_index"], self.steps), Usage(),
                          self.name, self.transport)

    def cache_settings(self):
        return {"model": "bench"}


def timed_run(steps: int, **kw) -> tuple[float, list[float], Run, object]:
    starts: dict[int, float] = {}
    durations: list[tuple[int, float]] = []

    def listen(e: ev.Event) -> None:
        if e.type == ev.STEP_STARTED:
            starts[e.data["step"]] = time.perf_counter()
        elif e.type == ev.STEP_FINISHED and e.data["step"] in starts:
            durations.append((e.data["step"], time.perf_counter() - starts.pop(e.data["step"])))

    run = Run(RunConfig(prompt="Grow.", recover=False, budget=None, **kw.pop("config", {})),
              model=kw.pop("model", GrowingModel(steps)), listeners=[listen], **kw)
    t0 = time.perf_counter()
    result = execute_with_deep_stack(run.execute)
    wall = time.perf_counter() - t0
    assert result.error is None, result.error
    return wall, [d for _, d in sorted(durations)], run, result


def bare_eval_times(programs: list[str]) -> tuple[list[float], list[float]]:
    """Baseline: read + evaluate each program with no machine around it (effects unbound);
    returns the read+evaluate times and the evaluate-only times."""
    from spellide.spell.api import core_builtins, make_context
    import immutables
    from spellide.spell.api import Symbol, Builtin
    both, alone = [], []
    noop_eval = Builtin("eval", lambda x: x)
    for text in programs:
        t0 = time.perf_counter()
        form = read_one(text)
        ctx = make_context(core_builtins())
        t1 = time.perf_counter()
        evaluate(form, immutables.Map({Symbol("eval"): noop_eval}), ctx)
        t2 = time.perf_counter()
        both.append(t2 - t0)
        alone.append(t2 - t1)
    return both, alone


def cli_chain(steps: int, workdir: Path) -> float:
    """Wall time of a ``steps``-step growing chain through the CLI (a fresh process)."""
    script = workdir / f"growing-{steps}.json"
    script.write_text(json.dumps([growing_completion(i, steps) for i in range(steps)]))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "spellide.spell.cli", "run", "--prompt", "Grow.",
                          "--model", f"scripted:{script}", "--budget", "0", "--no-recover"],
                         capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode != 0 or out.stdout.strip() != "2":
        raise SystemExit(f"CLI chain of {steps} steps failed: {out.stderr.strip()}")
    return wall


def peak_rss_of(steps: int) -> tuple[float, float]:
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from bench.runtime_bench import chain_run
t = chain_run({steps})
# VmHWM, not ru_maxrss: a child inherits its parent's ru_maxrss across fork/exec on Linux.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(t, int(hwm) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, rss = out.stdout.split()
    return float(wall), float(rss)


class ChainModel:
    name = "chain"
    transport = "prefill"

    def __init__(self, n: int):
        self.n = n

    def complete(self, request: ModelRequest) -> Completion:
        i = request.extra["call_index"]
        return Completion("(prune) '(!extend)" if i < self.n - 1 else str(i + 1), Usage(), self.name, self.transport)

    def cache_settings(self):
        return {"model": "chain"}


def chain_run(n: int) -> float:
    run = Run(RunConfig(prompt="Count.", recover=False, budget=None), model=ChainModel(n), keep_history=False)
    t0 = time.perf_counter()
    result = execute_with_deep_stack(run.execute, stack_mb=16, recursion=3000)
    assert result.error is None and result.value == n, result.error
    return time.perf_counter() - t0


def section_1(n: int, repeats: int) -> None:
    print(f"== 1. machine overhead per step, {n}-step scripted run (median of {repeats} runs)")
    med = statistics.median
    walls, per_step_medians, early, late, bare_med = [], [], [], [], []
    eval_early, eval_late, own_early, own_late = [], [], [], []
    for _ in range(repeats):
        wall, durs, run, result = timed_run(n)
        programs = [s["program"] for s in result.steps]
        # evaluation alone of the first and last 100 programs, right after the run (the load
        # of a shared machine drifts); then read + evaluate of every program
        _, alone = bare_eval_times(programs[:100] + programs[-100:])
        own = [d - e for d, e in zip(durs[:100] + durs[-100:], alone)]  # the machine's part
        bare, _ = bare_eval_times(programs)
        walls.append(wall)
        per_step_medians.append(statistics.median(durs))
        early.append(statistics.median(durs[:100]))
        late.append(statistics.median(durs[-100:]))
        eval_early.append(statistics.median(alone[:100]))
        eval_late.append(statistics.median(alone[-100:]))
        own_early.append(statistics.median(own[:100]))
        own_late.append(statistics.median(own[-100:]))
        bare_med.append(statistics.median(bare))
        size = len(programs[-1])
    print(f"final program size: {size / 1024:.1f} KB")
    print(f"wall time: {med(walls):.2f} s")
    print(f"per step (median): {med(per_step_medians) * 1000:.2f} ms; "
          f"first 100 steps (~{len(programs[50]) // 1024} KB): {med(early) * 1000:.2f} ms; "
          f"last 100 steps (~{size // 1024} KB): {med(late) * 1000:.2f} ms; "
          f"last / first = {med(late) / med(early):.1f}x")
    print(f"  of which evaluating the program (alone, same programs): first 100 "
          f"{med(eval_early) * 1000:.2f} ms, last 100 {med(eval_late) * 1000:.2f} ms")
    print(f"  machine's own part (step - evaluation): first 100 {med(own_early) * 1000:.2f} ms, "
          f"last 100 {med(own_late) * 1000:.2f} ms; last / first = "
          f"{med(x / y for x, y in zip(own_late, own_early)):.1f}x (median of the runs' ratios)")
    ratio = med(per_step_medians) / med(bare_med)
    print(f"baseline read+eval of the same programs alone (median): {med(bare_med) * 1000:.2f} ms/step; "
          f"machine step / bare eval = {ratio:.2f}x")

    print(f"\n== 1b. the growing chain through the CLI, {n} steps against {n // 4} (median of "
          f"{repeats}, a fresh process each)")
    with tempfile.TemporaryDirectory() as tmp:
        small = med(cli_chain(n // 4, Path(tmp)) for _ in range(repeats))
        big = med(cli_chain(n, Path(tmp)) for _ in range(repeats))
    print(f"{n // 4} steps: {small:.2f} s; {n} steps: {big:.2f} s; "
          f"{n} / {n // 4} = {big / small:.1f}x (linear would be 4x)")


def section_2(repeats: int) -> None:
    print("\n== 2. extension chains (trampolined): wall time and peak RSS, each in a fresh process")
    rows = []
    for steps in (1000, 10000):
        samples = [peak_rss_of(steps) for _ in range(repeats)]
        wall = statistics.median(s[0] for s in samples)
        rss = statistics.median(s[1] for s in samples)
        rows.append((steps, wall, rss))
        print(f"{steps:6d} steps: {wall:.2f} s wall, {wall / steps * 1e6:.0f} us/step, peak RSS {rss:.1f} MB")
    print(f"peak RSS 10,000 / 1,000 steps: {rows[1][2] / rows[0][2]:.2f}x (history is not kept in memory)")


def section_3(n: int, repeats: int) -> None:
    med = statistics.median
    k = n // 2
    print(f"\n== 3. strict replay of a recorded {n}-step run, and a fork of it from step {k}, vs "
          f"the original (median of {repeats})")
    from spellide.spell.api import NoLiveModel
    orig, replay, fork = [], [], []
    for _ in range(repeats):
        wall, _, run, result = timed_run(n)
        orig.append(wall)
        rec = Record.from_json(json.loads(json.dumps(run.record().to_json())))
        wall2, _, run2, result2 = timed_run(n, model=NoLiveModel(rec.model_settings), record=rec,
                                            config={"cache_mode": "strict"})
        assert result2.value == result.value and result2.effects_executed == 0
        replay.append(wall2)
        # the fork reuses every effect of steps 0..k and calls the model after them
        wall3, _, run3, result3 = timed_run(n, record=rec, fork_at=k,
                                            config={"cache_mode": "replay"})
        assert result3.value == result.value
        assert result3.effects_executed == n - 1 - k, result3.effects_executed
        fork.append(wall3)
    # ratios of each repeat's runs, which follow each other: on a shared machine the load
    # drifts between repeats more than within one
    print(f"original: {med(orig):.2f} s; strict replay: {med(replay):.2f} s; "
          f"replay / original = {med(r / o for r, o in zip(replay, orig)):.2f}x (median of "
          f"paired ratios); effects executed during replay: 0 of {result.effects_executed}")
    print(f"fork from step {k}: {med(fork):.2f} s; fork / original = "
          f"{med(f / o for f, o in zip(fork, orig)):.2f}x; effects executed: 0 for steps "
          f"0-{k}, {n - 1 - k} model calls after the fork point")



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--sections", default="1,2,3", help="which sections to run, e.g. 1,3")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    if "1" in sections:
        section_1(args.steps, args.repeats)
    if "2" in sections:
        section_2(args.repeats)
    if "3" in sections:
        section_3(args.steps, args.repeats)


if __name__ == "__main__":
    main()
