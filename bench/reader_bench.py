"""Reader throughput: spellide's reader against sexpdata.loads on the same text.

The inputs are what both readers accept: nested lists of symbols, integers and plain
strings, about 1 MB each, in two layouts (compact, one form per line; and indented the way
models and people write code). Each reader is timed on the whole text, the median of
several alternating runs is reported, and the median of the per-run ratios
sexpdata-time / spellide-time (above 1 means spellide is faster). A last line times a 50 KB
program, the size of a late step's program, read whole and as the turn machine reads it now:
its printed prefix carried from the step before, only the completion scanned. The first line
says whether the C fast path (spellide/spell/_speedups/, built by ./dev setup) is in use; when
it is, the pure-Python reader is timed against sexpdata too, for reference.

Run: .venv/bin/python bench/reader_bench.py [--runs N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sexpdata  # noqa: E402

from spellide.spell.api import (assemble, carry_quine_prefix, read_all,  # noqa: E402
                                read_all_spans_python, read_one, reader_fast_path)

_SYMBOLS = ["def", "let", "map", "reduce", "fn", "x", "acc", "str/join", "+", "<=", "valid?",
            "get-in", "assoc", "items", "!llm-self", "think"]
_STRINGS = ["hello world", "abc", "some longer text for the model to read", "", "x y z"]


def _atom(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.55:
        return rng.choice(_SYMBOLS)
    if r < 0.8:
        return str(rng.randint(-1000, 100000))
    return '"' + rng.choice(_STRINGS) + '"'


def _form(rng: random.Random, depth: int, indent: int, pretty: bool) -> str:
    if depth > 4 or (depth > 0 and rng.random() < 0.45):
        return _atom(rng)
    kids = [_form(rng, depth + 1, indent + 2, pretty) for _ in range(rng.randint(1, 6))]
    if pretty and len(kids) > 2:
        sep = "\n" + " " * (indent + 2)
        return "(" + kids[0] + " " + kids[1] + "".join(sep + k for k in kids[2:]) + ")"
    return "(" + " ".join(kids) + ")"


def make_text(size: int, pretty: bool, seed: int = 7) -> tuple[str, int]:
    """About ``size`` characters of top-level forms; returns the text and the form count."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size:
        f = _form(rng, 0, 0, pretty)
        parts.append(f)
        total += len(f) + 2
    return ("\n\n" if pretty else "\n").join(parts), len(parts)


def median_time(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up (regex compilation, caches)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired_times(a: Callable[[], object], b: Callable[[], object],
                 runs: int) -> tuple[float, float, float]:
    """Median time of a, of b, and median of the per-run ratios b/a. The runs alternate, so
    a load change on a shared machine hits both readers alike."""
    a()
    b()
    ta, tb = [], []
    for _ in range(runs):
        t = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        b()
        tb.append(time.perf_counter() - t)
    return (statistics.median(ta), statistics.median(tb),
            statistics.median(y / x for x, y in zip(ta, tb)))


def check_same(head: str) -> None:
    """Both readers must see the same structure, or the comparison is meaningless."""
    def ours(x):
        if isinstance(x, tuple):
            return [ours(y) for y in x]
        return ("sym", x.full) if hasattr(x, "full") else x

    def theirs(x):
        if isinstance(x, list):
            return [theirs(y) for y in x]
        if isinstance(x, sexpdata.Symbol):
            return ("sym", str(x))
        return str(x) if isinstance(x, str) else x

    a = [ours(f) for f in read_all(head)]
    b = theirs(sexpdata.loads("(" + head + ")"))
    if a != b:
        raise SystemExit("readers disagree on the benchmark input")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size", type=int, default=1_000_000)
    args = ap.parse_args()
    fast = reader_fast_path()
    print(f"Python {sys.version.split()[0]}, sexpdata {sexpdata.__version__}, "
          f"median of {args.runs} runs; C fast path: {'in use' if fast else 'not built (pure Python)'}")
    for label, pretty in (("compact", False), ("indented", True)):
        text, nforms = make_text(args.size, pretty)
        check_same(make_text(20000, pretty, seed=3)[0])
        mb = len(text.encode()) / 1e6
        ours, theirs, ratio = paired_times(lambda: read_all(text),
                                           lambda: sexpdata.loads("(" + text + ")"), args.runs)
        print(f"{label:9} {mb:.2f} MB, {nforms} forms")
        print(f"  spellide  {ours * 1000:8.1f} ms  {mb / ours:6.2f} MB/s  {nforms / ours:9.0f} forms/s")
        print(f"  sexpdata  {theirs * 1000:8.1f} ms  {mb / theirs:6.2f} MB/s  {nforms / theirs:9.0f} forms/s")
        print(f"  ratio sexpdata/spellide (median of paired runs): {ratio:.2f}x")
        if fast:  # the Python reader alone, for reference (what runs where the C one is not built)
            pure, theirs2, ratio2 = paired_times(lambda: read_all_spans_python(text),
                                                 lambda: sexpdata.loads("(" + text + ")"), args.runs)
            print(f"  pure-Python reader {pure * 1000:8.1f} ms; ratio sexpdata/pure: {ratio2:.2f}x")
    program, _ = make_text(50_000, True, seed=11)
    t = median_time(lambda: read_all(program), max(args.runs, 20))
    quine = read_one("(quine completion (eval (do " + program + ")))")
    prefix, carry = carry_quine_prefix(quine)
    step = prefix + '(def x "a new form") \'(!extend)'
    whole = median_time(lambda: assemble(step, ""), max(args.runs, 20))
    carried = median_time(lambda: assemble(step, "", carry=carry), max(args.runs, 20))
    print(f"50 KB program: spellide {t * 1000:.1f} ms per read; a step's program "
          f"({len(step) // 1024} KB) assembled by reading it whole {whole * 1000:.1f} ms, "
          f"with its prefix carried {carried * 1000:.2f} ms ({whole / carried:.0f}x less)")


if __name__ == "__main__":
    main()
