"""Futures: leaf-llm calls overlapped by ``blocking/pmap`` (figures, not a test).

A run's init program starts one future whose body maps ``leaf-llm`` over ``n`` prompts with
``blocking/pmap``; the model waits ``--latency`` seconds per call (no network). Printed per
``n``: the wall time of the run against ``latency`` (all calls at once, the ideal) and against
``n * latency`` (one after another); and the same run replayed strictly from its record
(``effects executed`` must be 0). A last row: ``--many`` pure futures (one pmap), their wall
time and the peak traced memory of the run.

Usage: .venv/bin/python bench/futures.py [--latency 0.2] [--sizes 2,20,50] [--many 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spellide.spell import api  # noqa: E402


class SlowLeaves:
    """Answers every leaf-llm call with its prompt after ``latency`` seconds."""

    name = "slow-leaves"
    transport = "prefill"

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def complete(self, request: Any) -> Any:
        time.sleep(self.latency)
        return api.Completion(request.prefix, api.Usage(), self.name, self.transport)

    def cache_settings(self) -> dict:
        return {"model": self.name}


def program(body: str) -> str:
    return f"(quine completion (eval (do '(future {body}))))"


def execute(config: Any, **kw: Any) -> tuple[Any, float]:
    run = api.Run(config, **kw)
    t0 = time.monotonic()
    result = api.execute_with_deep_stack(run.execute)
    return (result, run), time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--sizes", default="2,20,50")
    ap.add_argument("--many", type=int, default=5000)
    args = ap.parse_args()
    print(f"{'n':>5} {'wall s':>7} {'ideal s':>7} {'serial s':>8} {'replay s':>8} {'executed':>8}")
    for n in (int(x) for x in args.sizes.split(",")):
        init = program(f"(count (blocking/pmap (fn [i] (leaf-llm (str \"q\" i))) (range {n})))")
        (result, run), wall = execute(api.RunConfig(init=init, recover=False),
                                      model=SlowLeaves(args.latency))
        assert result.error is None, result.error
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "run.json"
            run.record().save(path)
            (replayed, _), replay = execute(api.RunConfig(init=init, model=f"replay:{path}",
                                                          cache_mode="strict", recover=False))
        assert replayed.error is None, replayed.error
        print(f"{n:>5} {wall:>7.2f} {args.latency:>7.2f} {n * args.latency:>8.1f} {replay:>8.2f} "
              f"{replayed.effects_executed:>8}")
    tracemalloc.start()
    (result, _), wall = execute(api.RunConfig(init=program(
        f"(count (blocking/pmap (fn [x] (* x x)) (range {args.many})))"), recover=False),
        model=SlowLeaves(0))
    peak = tracemalloc.get_traced_memory()[1]
    assert result.error is None, result.error
    print(f"{args.many} pure futures in one pmap: {wall:.2f} s wall, peak traced memory "
          f"{peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
