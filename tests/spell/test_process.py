"""A run in a child process (``spellide.spell.process``) is the same run: the same events in
the same order, pause points answered by the parent's controller, errors and a dead child
reported as such, and a child whose parent went away ends instead of going on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spellide.spell import api
from spellide.spell import events as ev
from spellide.spell.api import Breakpoints, Controller, Decision, RunConfig
from spellide.spell.journal import read_journal
from spellide.spell.machine import Run, execute_with_deep_stack
from spellide.spell import process
from spellide.spell.process import ProcessRun, RunProcessDied, RunProcessFailed

ROOT = Path(__file__).resolve().parents[2]
APPEND = [f"'(!call-now w{i} (io/spit \"log.txt\" \"line {i}\\n\" {{:append true}}))" for i in range(3)] + [
    "'(!call-now final (io/slurp \"log.txt\"))", "(:ok final)"]


def script(tmp_path: Path, completions: list[str], name: str = "script.json") -> str:
    p = tmp_path / name
    p.write_text(json.dumps({"completions": completions}), encoding="utf-8")
    return f"scripted:{p}"


def shape(events: list[ev.Event]) -> list[tuple]:
    """What must match between two executions (timings differ)."""
    out = []
    for e in events:
        d = e.data
        out.append((e.seq, e.type, d.get("step"), d.get("prefix"), d.get("program"), d.get("value"),
                    (d.get("effect") or {}).get("result"), (d.get("effect") or {}).get("status")))
    return out


class Script(Controller):
    """Answers pause points from a list of decisions and remembers the points."""

    interactive = True

    def __init__(self, decisions: list[Decision]) -> None:
        self.decisions = list(decisions)
        self.points: list[api.PausePoint] = []

    def checkpoint(self, point: api.PausePoint) -> Decision:
        self.points.append(point)
        return self.decisions.pop(0) if self.decisions else Decision()


def test_a_run_in_a_child_emits_what_the_same_run_emits_in_process(tmp_path):
    here_ws, child_ws = tmp_path / "here", tmp_path / "child"
    here_ws.mkdir()
    child_ws.mkdir()
    model = script(tmp_path, APPEND)
    here: list[ev.Event] = []
    execute_with_deep_stack(Run(RunConfig(prompt="P", model=model, workspace=str(here_ws)),
                                listeners=[here.append]).execute)
    there: list[ev.Event] = []
    ProcessRun(RunConfig(prompt="P", model=model, workspace=str(child_ws)), listeners=[there.append]).execute()
    assert [e.type for e in there][-1] == ev.RUN_FINISHED
    assert shape(there) == shape(here)
    assert (child_ws / "log.txt").read_text() == (here_ws / "log.txt").read_text() == "line 0\nline 1\nline 2\n"


def test_pause_points_go_to_the_parents_controller_and_its_decisions_come_back(tmp_path):
    model = script(tmp_path, ["41", "42"])
    edited = []

    class Edit(Script):
        def checkpoint(self, point):
            decision = super().checkpoint(point)
            if point.kind == api.AFTER_COMPLETION:
                edited.append(point.text)
                return Decision(api.CONTINUE, point.text.replace("41", "43"), "alice")
            return decision

    controller = Edit([])
    events: list[ev.Event] = []
    config = RunConfig(prompt="P", model=model, breakpoints=Breakpoints(after_completion=True))
    ProcessRun(config, listeners=[events.append], controller=controller).execute()
    assert [p.kind for p in controller.points] == [api.AFTER_COMPLETION]
    assert "41" in edited[0]
    assert events[-1].type == ev.RUN_FINISHED and events[-1].data["value"] == "43"
    resumed = [e for e in events if e.type == ev.RESUMED]
    assert resumed and resumed[0].data.get("edited")


def test_a_pause_requested_while_the_child_runs_reaches_it(tmp_path):
    """``wants_pause`` is mirrored into the child when the controller says it changed."""
    completions = [f"'(!call-now v{i} (+ {i} 1))" for i in range(400)] + ["(:ok done)"]
    model = script(tmp_path, completions)

    class Requested(Script):
        def __init__(self):
            super().__init__([Decision(api.STOP)])
            self.requested = False
            self._watchers = []

        def wants_pause(self, kind):
            return self.requested

        def watch(self, callback):
            self._watchers.append(callback)

        def request(self):
            self.requested = True
            for w in self._watchers:
                w()

        def checkpoint(self, point):
            self.requested = False
            return super().checkpoint(point)

    controller = Requested()
    events: list[ev.Event] = []

    def listener(e: ev.Event) -> None:
        events.append(e)
        if e.type == ev.STEP_STARTED and e.data.get("step") == 3:
            controller.request()

    ProcessRun(RunConfig(prompt="P", model=model), listeners=[listener], controller=controller).execute()
    assert len(controller.points) == 1
    assert events[-1].type == ev.RUN_FAILED and events[-1].data.get("kind") == "stopped"
    steps = [e.data["step"] for e in events if e.type == ev.STEP_STARTED]
    assert 3 <= max(steps) < 400   # it stopped soon after the request, not at the end


def test_step_from_before_the_model_call_stops_once_per_model_call(tmp_path):
    """Step from a before-model pause runs the step's model call without another stop before
    its effect (one model call, one stop): the next stop is after the completion."""
    from spellide.spell.machine import Run as MachineRun
    controller = Script([Decision(api.STEP), Decision(api.STEP), Decision(api.STOP)])
    config = RunConfig(prompt="P", model=script(tmp_path, ["(def a 1) '(!extend)", "a"]),
                       breakpoints=Breakpoints(before_model=True))
    MachineRun(config, controller=controller).execute()
    assert [(p.kind, p.step) for p in controller.points] == [
        (api.BEFORE_MODEL, 0), (api.AFTER_COMPLETION, 0), (api.BEFORE_MODEL, 1)]


def test_an_error_outside_the_language_is_raised_with_its_message(tmp_path):
    with pytest.raises(RunProcessFailed) as info:
        ProcessRun(RunConfig(prompt="P", model="no-such-model")).execute()
    assert "unknown model" in info.value.message


def test_a_child_that_dies_is_reported_and_its_journal_keeps_what_it_executed(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    journal = tmp_path / "journal.jsonl"
    execution = None

    class Kill(Script):
        def checkpoint(self, point):
            os.kill(execution.process.pid, signal.SIGKILL)
            return Decision()

    config = RunConfig(prompt="P", model=script(tmp_path, APPEND), workspace=str(ws),
                       breakpoints=Breakpoints(effect_kinds=["io/slurp"]))
    events: list[ev.Event] = []
    execution = ProcessRun(config, listeners=[events.append], controller=Kill([]), journal_path=journal,
                           segment=2)
    with pytest.raises(RunProcessDied) as info:
        execution.execute()
    assert info.value.exitcode == -signal.SIGKILL
    assert "killed by signal 9" in str(info.value)
    entries = read_journal(journal)
    # paused (and killed) before the io/slurp: every model call and write before it is journaled
    assert [e["effect"]["name"] for e in entries] == ["model/spell", "io/spit"] * 3 + ["model/spell"]
    assert all(e["segment"] == 2 and "args" not in e["effect"] for e in entries)
    relayed = {e.seq for e in events if e.type == ev.EFFECT}
    assert {e["seq"] for e in entries} == relayed



def test_a_run_keeps_at_most_AHEAD_events_ahead_of_a_slow_parent_and_no_fewer(tmp_path):
    # The child journals each model call before it sends the event, so the journal shows how
    # far the run has got while the parent is still busy with an older event.
    journal = tmp_path / "journal.jsonl"
    steps = 24
    model = script(tmp_path, [f"(def v{i} {i}) '(!extend)" for i in range(steps)] + ["(:ok v1)"])
    lead: list[int] = []
    waiting: list[bool] = []

    def slow(event: ev.Event) -> None:
        time.sleep(0.015)   # the child makes an event far faster: it is always ahead
        ran = max((e["seq"] for e in read_journal(journal)), default=0)
        lead.append(ran - event.seq)
        waiting.append(execution.more_waiting())

    execution = ProcessRun(RunConfig(prompt="P", model=model, recover=False), listeners=[slow],
                           journal_path=journal)
    execution.execute()
    assert len(read_journal(journal)) == steps + 1
    # a listener can tell that more of the run waits for it
    assert all(waiting[:-2 * process.AHEAD]) and not execution.more_waiting()
    assert max(lead) <= process.AHEAD
    # acknowledged while still behind, the run never waits for a parent that is not AHEAD
    # behind (acknowledged only when caught up, it stopped until the parent had taken all)
    assert min(lead[:-2 * process.AHEAD]) > 0, lead


def test_a_child_whose_parent_died_ends_instead_of_going_on(tmp_path):
    """Kill the process that started a run paused at a breakpoint: its child must not go on
    (nothing would store what it does)."""
    model = script(tmp_path, ["'(!call-now v (+ 1 1))", "(:ok v)"])
    program = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from spellide.spell.api import Breakpoints, Controller, RunConfig
        from spellide.spell.process import ProcessRun

        class Hold(Controller):
            interactive = True
            def checkpoint(self, point):
                print(execution.process.pid, flush=True)
                time.sleep(600)

        config = RunConfig(prompt="P", model={model!r}, breakpoints=Breakpoints(before_model=True))
        execution = ProcessRun(config, controller=Hold())
        execution.execute()
    """)
    parent = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its fork server parent) counts as ended
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_script_without_a_main_guard_starts_runs_once_each(tmp_path):
    """multiprocessing would run the parent's main script again in the child; a run's child
    must not (a script without ``if __name__ == "__main__"`` would start itself again)."""
    model = script(tmp_path, ["42"])
    main = tmp_path / "main.py"
    main.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from spellide.spell.api import RunConfig
        from spellide.spell.process import ProcessRun
        print("main ran", flush=True)
        for _ in range(2):
            values = []
            ProcessRun(RunConfig(prompt="P", model={model!r}),
                       listeners=[lambda e: e.type == "run_finished" and values.append(e.data["value"])]).execute()
            print("value", values[0], flush=True)
    """))
    out = subprocess.run([sys.executable, str(main)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["main ran", "value 42", "value 42"]


def test_a_child_silent_past_its_time_limit_is_ended_by_the_parent(monkeypatch):
    """One C call (squaring a huge integer) keeps every thread of the child from running, its
    own watchdog too: the parent ends it once it has been silent for the limit plus the grace."""
    monkeypatch.setattr(process, "SILENCE_GRACE", 1.0)
    started = time.monotonic()
    with pytest.raises(RunProcessFailed) as info:
        ProcessRun(RunConfig(init="(loop [x 3 i 0] (if (< i 40) (recur (* x x) (inc i)) 1))",
                             step_time_limit=1)).execute()
    assert info.value.kind == "timeout" and info.value.message == process.LONG_CALL
    assert time.monotonic() - started < 20


def test_a_child_waiting_on_its_model_is_not_silent(tmp_path, monkeypatch):
    """A model call longer than the step's limit is off the step's clock and waits with the
    interpreter lock released: the child's pulses go on, and the run finishes."""
    monkeypatch.setattr(process, "SILENCE_GRACE", 0.5)
    p = tmp_path / "slow.json"
    p.write_text(json.dumps([{"text": "'(!extend)", "latency": 2.5}, "42"]), encoding="utf-8")
    events: list[ev.Event] = []
    ProcessRun(RunConfig(prompt="P", model=f"scripted:{p}", step_time_limit=1),
               listeners=[events.append]).execute()
    assert events[-1].type == ev.RUN_FINISHED and events[-1].data["value"] == "42"
