"""The CLI contract of multi-agent runs: ``--model scripted:FILE`` with a script per agent,
``--json`` steps with ``agent`` and ``generation``, the run's ``agents`` and ``warnings``;
and fifty agents in the command's own process under its memory limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spellide(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spellide", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_json_reports_agents_steps_and_warnings(tmp_path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"main": ["'(do (agents/spawn \"Idle.\" :w2) (agents/!spawn-ask \"Return 42.\" :w))",
                                           "'(do (agents/ask :w2 1) (:body msg-1))"],
                                  "w": ["42"], "w2": ["nil", {"text": "nil", "latency": 1.0}]}))
    p = spellide("run", "--prompt", "P", "--model", f"scripted:{script}", "--json", "--no-recover", cwd=tmp_path)
    out = json.loads(p.stdout)
    assert out["error"] is None, out["error"]
    assert out["value"] == "42"
    mains = [s for s in out["steps"] if s["agent"] == ":main"]
    assert [s["generation"] for s in mains] == [1, 1]
    assert [s["agent"] for s in out["steps"] if s["agent"] == ":w"] == [":w"]
    agents = {a["handle"]: a for a in out["agents"]}
    assert agents[":main"]["parent"] is None and agents[":main"]["calls"] == 2
    assert agents[":w"]["parent"] == ":main" and agents[":w"]["status"] == "finished" and agents[":w"]["calls"] == 1
    assert ":w2" in agents
    [w] = out["warnings"]
    assert w["message"] == "Agent :main finished with unfinished outgoing edges; result collection abandoned."
    assert w["data"].startswith("{:handle :main :detached-edges [{:id 2 :targets [:w2]}]")


def test_a_list_script_stays_one_script(tmp_path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["42"]))
    p = spellide("run", "--prompt", "P", "--model", f"scripted:{script}", "--json", cwd=tmp_path)
    out = json.loads(p.stdout)
    assert out["value"] == "42" and out["agents"] == [{"handle": ":main", "parent": None, "status": "finished",
                                                       "generation": 1, "calls": 1}]
    assert out["warnings"] == [] and out["steps"][0]["agent"] == ":main"


def test_fifty_agents_fit_under_the_commands_memory_limit(tmp_path):
    """Fifty agent threads (8 MB stacks) under the default 1 GB; under 256 MB the spawn fails
    with a memory-limit error that says why."""
    n = 50
    specs = " ".join(f'[\\"T{i}.\\" :w{i}]' for i in range(n))
    script = {"main": [f"'(agents/!spawn-ask [{specs}])".replace('\\"', '"'), "(count (:body msg-1))"]}
    for i in range(n):
        script[f"w{i}"] = [str(i)]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(script))
    p = spellide("run", "--prompt", "P", "--model", f"scripted:{path}", "--json", cwd=tmp_path)
    out = json.loads(p.stdout)
    assert out["error"] is None, out["error"]
    assert out["value"] == str(n) and len(out["agents"]) == n + 1
    p = spellide("run", "--prompt", "P", "--model", f"scripted:{path}", "--json", "--memory-mb", "256",
                 "--no-recover", cwd=tmp_path)
    out = json.loads(p.stdout)
    assert out["error_kind"] == "memory-limit" and "does not fit under the run's memory limit" in out["error"]
