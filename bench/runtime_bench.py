"""Turn-machine benchmarks (figures, not tests).

1. Machine overhead per step (everything but the model) for a 1,000-step scripted run whose
   program grows to about 50 KB, against the baseline of evaluating each step's program alone
   (reader + evaluator, no machine), measured in the same run.
2. A 10,000-step extension chain: wall time and peak memory, against a 1,000-step chain in the
   same run (memory must follow the live program, not the history).
3. Strict replay of a recorded 1,000-step run against the original run.

Usage: .venv/bin/python bench/runtime_bench.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spellide.spell.api import (Completion, ModelRequest, Record, Run, RunConfig, Usage,  # noqa: E402
                                events as ev, evaluate, execute_with_deep_stack, read_one)


class GrowingModel:
    """Each turn appends ~50 characters and extends; the last turn returns a value."""

    name = "bench"
    transport = "prefill"

    def __init__(self, steps: int):
        self.steps = steps

    def complete(self, request: ModelRequest) -> Completion:
        i = request.extra["call_index"]
        if i >= self.steps - 1:
            return Completion("(count [v1 v2])", Usage(), self.name, self.transport)
        return Completion(f'(def v{i} "step {i:05d} padding text.") \'(!extend)', Usage(), self.name, self.transport)

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


def bare_eval_times(programs: list[str]) -> list[float]:
    """Baseline: read + evaluate each program with no machine around it (effects unbound)."""
    from spellide.spell.api import core_builtins, make_context
    import immutables
    from spellide.spell.api import Symbol, Builtin
    out = []
    noop_eval = Builtin("eval", lambda x: x)
    for text in programs:
        t0 = time.perf_counter()
        form = read_one(text)
        ctx = make_context(core_builtins())
        evaluate(form, immutables.Map({Symbol("eval"): noop_eval}), ctx)
        out.append(time.perf_counter() - t0)
    return out


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    n = args.steps

    print(f"== 1. machine overhead per step, {n}-step scripted run (median of {args.repeats} runs)")
    walls, per_step_medians, early, late, bare_med = [], [], [], [], []
    for _ in range(args.repeats):
        wall, durs, run, result = timed_run(n)
        programs = [s["program"] for s in result.steps]
        bare = bare_eval_times(programs)
        walls.append(wall)
        per_step_medians.append(statistics.median(durs))
        early.append(statistics.median(durs[:100]))
        late.append(statistics.median(durs[-100:]))
        bare_med.append(statistics.median(bare))
        size = len(programs[-1])
    print(f"final program size: {size / 1024:.1f} KB")
    print(f"wall time: {statistics.median(walls):.2f} s")
    print(f"per step (median): {statistics.median(per_step_medians) * 1000:.2f} ms; "
          f"first 100 steps (~{len(programs[50]) // 1024} KB): {statistics.median(early) * 1000:.2f} ms; "
          f"last 100 steps (~{size // 1024} KB): {statistics.median(late) * 1000:.2f} ms")
    ratio = statistics.median(per_step_medians) / statistics.median(bare_med)
    print(f"baseline read+eval of the same programs alone (median): {statistics.median(bare_med) * 1000:.2f} ms/step; "
          f"machine step / bare eval = {ratio:.2f}x")

    print("\n== 2. extension chains (trampolined): wall time and peak RSS, each in a fresh process")
    rows = []
    for steps in (1000, 10000):
        samples = [peak_rss_of(steps) for _ in range(args.repeats)]
        wall = statistics.median(s[0] for s in samples)
        rss = statistics.median(s[1] for s in samples)
        rows.append((steps, wall, rss))
        print(f"{steps:6d} steps: {wall:.2f} s wall, {wall / steps * 1e6:.0f} us/step, peak RSS {rss:.1f} MB")
    print(f"peak RSS 10,000 / 1,000 steps: {rows[1][2] / rows[0][2]:.2f}x (history is not kept in memory)")

    print(f"\n== 3. strict replay of a recorded {n}-step run vs the original (median of {args.repeats})")
    orig, replay = [], []
    for _ in range(args.repeats):
        wall, _, run, result = timed_run(n)
        orig.append(wall)
        rec = Record.from_json(json.loads(json.dumps(run.record().to_json())))
        from spellide.spell.api import NoLiveModel
        wall2, _, run2, result2 = timed_run(n, model=NoLiveModel(rec.model_settings), record=rec,
                                            config={"cache_mode": "strict"})
        assert result2.value == result.value and result2.effects_executed == 0
        replay.append(wall2)
    print(f"original: {statistics.median(orig):.2f} s; strict replay: {statistics.median(replay):.2f} s; "
          f"replay / original = {statistics.median(replay) / statistics.median(orig):.2f}x; "
          f"effects executed during replay: 0 of {result.effects_executed}")


if __name__ == "__main__":
    main()
