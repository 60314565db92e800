"""Multi-agent benchmark (figures, not tests): the root fans out to N agents at once
(``agents/!spawn-ask`` over N specs) whose scripted model sleeps ``latency`` per call, and
collects their answers. Agents run concurrently in the run's process, so the wall time should
stay near one model latency (the ideal) rather than N of them (sequential).

Prints wall time against the ideal (one latency for the workers plus the root's two calls)
and against sequential (every call one after another); then records the run and replays it
strictly (turnstile, model calls from the record): replay time against evaluation time, and
the effects a replay executed (must be 0). The evaluation for that comparison uses a
zero-latency model, so that the two do the same work apart from the model.

Usage: .venv/bin/python bench/agents.py [--agents 50] [--latency 0.2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spellide.spell.api import (NoLiveModel, Run, RunConfig, ScriptedModel,  # noqa: E402
                                execute_with_deep_stack)


def fan_out_run(n: int, latency: float) -> tuple[float, object, object]:
    specs = " ".join(f'["Task {i}." :w{i}]' for i in range(n))
    script = {"main": [{"text": f"'(agents/!spawn-ask [{specs}])", "latency": latency},
                       {"text": "(reduce + (map :body (:body msg-1)))", "latency": latency}]}
    for i in range(n):
        script[f"w{i}"] = [{"text": str(i), "latency": latency}]
    run = Run(RunConfig(prompt="Fan out.", recover=False), model=ScriptedModel(script))
    t0 = time.perf_counter()
    result = execute_with_deep_stack(run.execute)
    wall = time.perf_counter() - t0
    if result.error is not None or result.value != n * (n - 1) // 2:
        raise SystemExit(f"the fan-out run failed: {result.error or result.value_text}")
    return wall, result, run


def strict_replay(run: object) -> tuple[float, object]:
    record = run.record()
    cfg = RunConfig(prompt="Fan out.", recover=False, cache_mode="strict")
    replay = Run(cfg, model=NoLiveModel(record.model_settings), record=record)
    t0 = time.perf_counter()
    result = execute_with_deep_stack(replay.execute)
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n, lat = args.agents, args.latency
    walls = []
    result = None
    for _ in range(args.repeats):
        wall, result, _ = fan_out_run(n, lat)
        walls.append(wall)
    wall = statistics.median(walls)
    ideal = 3 * lat            # root call 1, the workers at once, root call 2
    sequential = (n + 2) * lat
    print(f"== fan-out to {n} agents, scripted model sleeping {lat * 1000:.0f} ms per call "
          f"(median of {args.repeats})")
    print(f"model calls: {len(result.steps)} ({n} workers + 2 root); agents: {len(result.agents)}")
    print(f"wall time: {wall:.3f} s; ideal (3 latencies: root, workers at once, root) {ideal:.3f} s "
          f"-> {wall / ideal:.2f}x ideal; sequential {sequential:.3f} s -> {sequential / wall:.1f}x faster")
    print(f"worker part alone: {wall - 2 * lat:.3f} s for {n} calls of {lat * 1000:.0f} ms "
          f"-> {(wall - 2 * lat) / lat:.2f}x one latency")
    evals, replays, executed, same = [], [], [], True
    for _ in range(args.repeats):
        t_eval, original, run = fan_out_run(n, 0.0)
        t_replay, replayed = strict_replay(run)
        evals.append(t_eval)
        replays.append(t_replay)
        executed.append(replayed.effects_executed)
        same = same and replayed.error is None and replayed.value_text == original.value_text and \
            [s["prefix"] for s in replayed.steps] == [s["prefix"] for s in original.steps]
    e, r = statistics.median(evals), statistics.median(replays)
    print(f"== strict replay of the {n}-agent run (zero-latency model for the evaluation; median of {args.repeats})")
    print(f"evaluation: {e:.3f} s; strict replay: {r:.3f} s -> {r / e:.2f}x evaluation; effects executed "
          f"during replay: {max(executed)}; value and every prefix identical: {same}")


if __name__ == "__main__":
    main()
