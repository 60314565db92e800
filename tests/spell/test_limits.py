"""Run limits in the runtime and the command line: memory (the process's limit, the size
checks of the builtins that build big values, MemoryError as the run's error), step and run
time limits (model calls and pauses off the clock), regex matches that end at the time limit,
and input files read up to a size limit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spellide.spell import api
from spellide.spell.api import Breakpoints, Controller, Decision, RunConfig
from spellide.spell.data import Builtin
from spellide.spell.evaluator import make_context, run_source
from spellide.spell.machine import Run, execute_with_deep_stack

DOUBLING = '(loop [s "x" i 0] (if (< i 34) (recur (str s s) (inc i)) (count s)))'
CATASTROPHIC = '(re-find #"(a|aa)+$" "' + "a" * 44 + '!")'


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spellide", "run", *args], capture_output=True,
                          text=True, timeout=timeout)


def run(init: str, **kw) -> Run:
    machine = Run(RunConfig(init=init, **kw))
    machine.result = execute_with_deep_stack(machine.execute)
    return machine


# --- memory ---------------------------------------------------------------------------------
def test_cli_string_doubling_fails_at_the_memory_limit():
    started = time.monotonic()
    p = cli("--memory-mb", "256", "--init", DOUBLING)
    assert p.returncode == 1, p.stderr
    # the size check of str, or the process's limit a little before it (in str, or in the
    # evaluator around it), whichever comes first
    assert re.search(r"failed: Memory limit exceeded \(256 MB\)(: str (would build a value of about|ran out)"
                     r"| \(line)", p.stderr), p.stderr
    assert time.monotonic() - started < 90


def test_cli_nested_maps_printed_fail_at_the_memory_limit():
    nested = "(loop [m {:a 1} i 0] (if (< i 40) (recur {:a m :b m} (inc i)) (count (str m))))"
    p = cli("--memory-mb", "200", "--init", nested)
    assert p.returncode == 1, p.stderr
    assert "Memory limit exceeded (200 MB): printing a value would build" in p.stderr


def test_the_process_limit_catches_what_no_size_check_sees():
    """``(vec (repeat ...))`` of a vector: no builtin estimates it, the process limit ends it."""
    grow = "(loop [v [1] i 0] (if (< i 40) (recur (vec (concat v v v)) (inc i)) (count v)))"
    p = cli("--memory-mb", "200", "--init", grow)
    assert p.returncode == 1, p.stderr
    assert "Memory limit exceeded (200 MB)" in p.stderr


@pytest.mark.parametrize("program, builtin", [
    ("(loop [v [1] i 0] (if (< i 40) (recur (into v v) (inc i)) (count v)))", "into"),
    ("(loop [v (list 1) i 0] (if (< i 40) (recur (concat v v) (inc i)) (count v)))", "concat"),
    ('(loop [s "ab" i 0] (if (< i 40) (recur (strings/replace s "a" "aa") (inc i)) (count s)))',
     "strings/replace"),
    ('(loop [s "ab" i 0] (if (< i 40) (recur (strings/join "," [s s]) (inc i)) (count s)))', "strings/join"),
    (DOUBLING, "str"),
])
def test_builtins_refuse_a_result_past_the_memory_limit(program, builtin):
    m = run(program, memory_mb=300)
    assert m.result.error_kind == "memory-limit", m.result.error
    assert m.result.error.startswith(f"Memory limit exceeded (300 MB): {builtin} would build a value of about")
    assert m.result.status == "failed"


def test_memory_error_anywhere_is_the_memory_limit_error_and_try_cannot_catch_it():
    def boom() -> None:
        raise MemoryError
    ctx = make_context({"boom": Builtin("boom", boom)})
    r = run_source('(try (boom) (catch Exception e "caught"))', ctx=ctx)
    assert r.error is not None and r.error.kind == "memory-limit"
    assert r.error.message == "Memory limit exceeded (1024 MB): boom ran out of memory"


def test_memory_limit_is_in_the_run_config_and_off_with_none():
    assert RunConfig().memory_mb == 1024
    m = run('(count (apply str (repeat 3000 (apply str (repeat 1000 "x")))))', memory_mb=None)
    assert m.result.value_text == "3000000"


@pytest.mark.parametrize("flag", ["--prompt-file", "--init-file"])
def test_cli_refuses_unbounded_input_files(flag):
    p = cli(flag, "/dev/zero", timeout=30)
    assert p.returncode == 2
    assert "/dev/zero is larger than the limit of 16 MB" in p.stderr


def test_cli_refuses_an_unbounded_scripted_model():
    p = cli("--model", "scripted:/dev/zero", "--prompt", "hi", timeout=30)
    assert p.returncode == 2
    assert "scripted model file /dev/zero is larger than the limit of 16 MB" in p.stderr


@pytest.mark.parametrize("args, message", [
    (["--memory-mb", "10"], "--memory-mb must be 0 (unlimited) or at least 64"),
    (["--step-time", "nan"], "--step-time must be a number of seconds >= 0, not nan"),
    (["--run-time", "-1"], "--run-time must be a number of seconds >= 0, not -1"),
])
def test_cli_refuses_bad_limits(args, message):
    p = cli(*args, "--init", "(+ 1 2)", timeout=30)
    assert p.returncode == 2 and message in p.stderr


# --- time -----------------------------------------------------------------------------------
def test_cli_catastrophic_regex_ends_at_the_step_time_limit():
    started = time.monotonic()
    p = cli("--step-time", "1", "--init", CATASTROPHIC)
    assert p.returncode == 1, p.stderr
    assert "failed: Step time limit exceeded (1 s)" in p.stderr
    # the regex package's timeout counts the process's CPU time: on a busy machine, later
    assert time.monotonic() - started < 60


@pytest.mark.xfail(run=False, reason="not yet: a C call that never releases the interpreter lock (squaring "
                   "a huge integer) starves the watchdog thread, so the command is not ended at its limit; "
                   "the IDE's runs are ended by the server (process.py: a child silent past its limit). "
                   "The CLI evaluates in its own process: running it in a child as the IDE does is the fix.")
def test_cli_a_long_call_past_the_step_time_limit_ends_the_command():
    """Squaring a huge integer is one call in C that checks no deadline: the command's watchdog
    ends it at the limit (plus the grace) with the limit's message."""
    started = time.monotonic()
    p = cli("--step-time", "1", "--json", "--init", "(loop [x 3 i 0] (if (< i 40) (recur (* x x) (inc i)) 1))")
    assert p.returncode == 1, p.stderr
    assert "failed: Step time limit exceeded (1 s) (the run was ended inside one long call" in p.stderr
    assert json.loads(p.stdout)["error_kind"] == "timeout"
    assert time.monotonic() - started < 40


@pytest.mark.parametrize("program", [
    CATASTROPHIC,
    '(strings/replace "' + "a" * 44 + '!" #"(a|aa)+$" "x")',
    '(strings/split "' + "a" * 44 + '!" #"(a|aa)+$")',
    '(re-seq #"(a|aa)+$" "' + "a" * 44 + '!")',
    '(re-matches #"(a|aa)+" "' + "a" * 44 + '!")',
    "(loop [i 0] (recur (inc i)))",
    "(try (loop [i 0] (recur (inc i))) (catch Exception e :caught))",
])
def test_long_evaluations_end_at_the_step_time_limit(program):
    m = run(program, step_time_limit=0.5)
    assert m.result.error == "Step time limit exceeded (0.5 s)"
    assert m.result.error_kind == "timeout" and m.result.status == "failed"


def test_run_time_limit_counts_the_whole_run(tmp_path: Path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"text": "'(!extend)", "latency": 0.4}] * 6 + ['"done"']))
    m = Run(RunConfig(prompt="P", model=f"scripted:{script}", run_time_limit=1.0, step_time_limit=0.3))
    result = execute_with_deep_stack(m.execute)
    assert result.error == "Run time limit exceeded (1 s)"
    assert result.error_kind == "timeout"
    assert 2 <= len(result.steps) <= 4


def test_model_calls_are_off_a_steps_clock(tmp_path: Path):
    """A slow model call inside a program's evaluation (a non-tail self-call) does not count
    against the step time limit of the program that made it."""
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"text": '"inner"', "latency": 0.8}]))
    program = '(str "outer " (eval (quote (!llm-self "(do "))))'
    m = run(program, model=f"scripted:{script}", step_time_limit=0.5)
    assert m.result.error is None, m.result.error
    assert m.result.value_text == '"outer inner"'


class _SlowPerson(Controller):
    interactive = True

    def checkpoint(self, point: api.PausePoint) -> Decision:
        time.sleep(0.8)
        return Decision()


def test_pauses_are_on_no_clock(tmp_path: Path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["'(!extend)", "'(!extend)", '"done"']))
    m = Run(RunConfig(prompt="P", model=f"scripted:{script}", run_time_limit=1.0, step_time_limit=0.5,
                      breakpoints=Breakpoints(before_model=True)), controller=_SlowPerson())
    result = execute_with_deep_stack(m.execute)
    assert result.error is None, result.error
    assert result.value_text == '"done"'


def test_time_limits_are_in_the_run_config():
    cfg = RunConfig()
    assert cfg.step_time_limit == 60.0 and cfg.run_time_limit == 6 * 3600.0
    assert RunConfig.from_json({"init": "1"}).memory_mb == 1024   # records from before keep working


def test_regexes_still_match_as_before():
    r = run_source('[(re-find #"(\\d+)-(\\d+)" "a 12-34 b") (strings/split "a1b22c" #"\\d+") '
                   '(strings/replace "abc" #"(b)" "[$1]") (re-seq #"a." "abacad")]')
    assert r.error is None
    from spellide.spell.printer import pr_str
    assert pr_str(r.value) == '[["12-34" "12" "34"] ["a" "b" "c"] "a[b]c" ["ab" "ac" "ad"]]'
    bad = run_source('#"(a"')
    assert bad.error is not None and "Invalid regex" in bad.error.message


def test_a_catastrophic_grep_pattern_ends_at_the_step_time_limit(tmp_path: Path):
    """``io/grep`` matches with the regex package too: a pattern that backtracks for minutes
    ends at the step's time limit like ``re-find``."""
    (tmp_path / "a.txt").write_text("a" * 44 + "!\n")
    m = run("(eval '(io/grep \"(a|aa)+$\" \"a.txt\"))", step_time_limit=0.5, workspace=str(tmp_path))
    assert m.result.error == "Step time limit exceeded (0.5 s)"
    assert m.result.error_kind == "timeout"
