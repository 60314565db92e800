"""The command line is a contract: flags, the --json shape and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

STEP_KEYS = {"id", "parent", "depth", "prefix", "completion", "program", "value", "error", "effects"}
EFFECT_KEYS = {"name", "args", "result", "status", "reason"}


def spellide(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spellide", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def test_hello_prints_value():
    p = spellide("run", "--prompt", "Return a greeting")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == '"hello world"'


def test_json_shape_and_record_replay(tmp_path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["(def base 10) '(!call-now n (globals/set :n 1))", "(+ n base)"]))
    record = tmp_path / "run.json"
    p = spellide("run", "--prompt", "P", "--model", f"scripted:{script}", "--json", "--record", str(record))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["value"] == "11" and out["error"] is None
    assert out["effects_executed"] == 3 and out["effects_reused"] == 0
    for step in out["steps"]:
        assert STEP_KEYS <= set(step)
        for effect in step["effects"]:
            assert EFFECT_KEYS <= set(effect)
            assert effect["status"] in {"live", "hit", "miss", "blocked"}
    p = spellide("run", "--prompt", "P", "--model", f"replay:{record}", "--strict", "--json")
    assert p.returncode == 0, p.stderr
    again = json.loads(p.stdout)
    assert again["value"] == "11"
    assert again["effects_executed"] == 0 and again["effects_reused"] == 3


def test_trace_dir_and_import(tmp_path):
    trace = tmp_path / "trace"
    p = spellide("run", "--prompt", "Return a greeting", "--trace-dir", str(trace))
    assert p.returncode == 0, p.stderr
    assert (trace / "0000.spl").exists() and (trace / "trace.edn").exists() and (trace / "tree.txt").exists()
    p = spellide("trace", "import", str(trace))
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["steps"][0]["id"] == 0 and data["steps"][0]["value"] == '"hello world"'


def test_broken_program_reports_line_and_column():
    p = spellide("run", "--init", "(do (def x 1)\n  (+ x undefined-y))")
    assert p.returncode == 1
    assert "Unbound symbol: undefined-y" in p.stderr and "line 2, column 8" in p.stderr
    assert "Traceback" not in p.stderr


def test_unreadable_program_is_reported_with_position():
    p = spellide("run", "--init", "(+ 1", "--json")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["value"] is None and "EOF" in out["error"] and "1:" in out["error"]


@pytest.mark.parametrize("args, needle", [
    (["run", "--init-file", "/nonexistent.spl"], "program file not found"),
    (["run", "--prompt", "x", "--model", "scripted:/nonexistent.json"], "scripted model file not found"),
    (["run", "--prompt", "x", "--model", "bogus"], "unknown model"),
    (["run", "--prompt", "x", "--strict"], "--strict needs"),
    (["run", "--prompt", "x", "--workspace", "/nonexistent-dir"], "workspace is not a directory"),
    (["run"], "required"),
    (["trace", "import", "/nonexistent-trace"], ""),
    (["run", "--prompt", "x", "--budget", "-5"], "argument --budget: '-5' is negative"),
    (["run", "--prompt", "x", "--budget", "nan"], "argument --budget: 'nan' is not a finite number"),
    (["run", "--prompt", "x", "--budget", "inf"], "argument --budget: 'inf' is not a finite number"),
    (["run", "--prompt", "x", "--budget", "1e309"], "argument --budget: '1e309' is not a finite number"),
    (["run", "--prompt", "x", "--budget", "lots"], "argument --budget: 'lots' is not a number"),
    (["run", "--prompt", "x", "--depth", "-1"], "argument --depth: '-1' is not between 0"),
    (["run", "--prompt", "x", "--depth", "1001"], "argument --depth: '1001' is not between 0"),
    (["run", "--prompt", "x", "--depth", "2.5"], "argument --depth: '2.5' is not a whole number"),
])
def test_bad_usage_exits_2(args, needle):
    p = spellide(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert needle in p.stderr
    assert "Traceback" not in p.stderr


def test_bad_scripted_file_is_usage_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    p = spellide("run", "--prompt", "x", "--model", f"scripted:{bad}")
    assert p.returncode == 2 and "invalid JSON at line 1" in p.stderr


def test_failing_model_is_reported(tmp_path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["'(!extend)"]))
    p = spellide("run", "--prompt", "P", "--model", f"scripted:{script}")
    assert p.returncode == 1
    assert "Model call failed" in p.stderr and "no completion #2" in p.stderr


def test_workspace_io(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("hello")
    p = spellide("run", "--workspace", str(ws), "--init",
                 "(eval '(do (io/spit \"b.txt\" (str (:ok (io/slurp \"a.txt\")) \"!\")) (io/slurp \"b.txt\")))",
                 "--json")
    assert p.returncode == 0, p.stderr
    assert (ws / "b.txt").read_text() == "hello!"
    p = spellide("run", "--workspace", str(ws), "--init", "(eval '(io/slurp \"../outside\"))", "--json")
    out = json.loads(p.stdout)
    assert "escapes the workspace" in (out["error"] or json.dumps(out["effects"]))
