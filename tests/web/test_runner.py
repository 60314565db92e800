"""The run service against the real turn machine: persistence, pauses and breakpoints, edits
(refused with line:col when they do not parse), forks replayed from the effect cache, and
resuming an interrupted run from its persisted record."""

from __future__ import annotations

import pytest

from spellide.spell.api import Breakpoints, RunConfig
from spellide.web import runner
from spellide.web.models import Edit, Effect, ProgramVersion, Run, RunEvent, Step
from spellide.web.runner.persist import load_events

from .conftest import finish, wait_status, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

IO_SCRIPT = [
    "'(!call-now r (io/spit \"notes.txt\" \"line one\"))",
    "'(!call-now t (io/slurp \"notes.txt\"))",
    "(def n (count (:ok t))) '(!call-now u (io/spit \"count.txt\" (str n)))",
    "(think \"done\") [n (:ok u)]",
]


def io_config(scripted, tmp_path, script=IO_SCRIPT, **kw) -> RunConfig:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    return RunConfig(prompt="Write notes", model=scripted(script), workspace=str(ws), **kw)


def wait_pause(run, step: int, point: str | None = None):
    def check():
        r = Run.objects.get(pk=run.pk)
        return r if (r.status == "paused" and r.pause and r.pause.get("step") == step
                     and (point is None or r.pause.get("point") == point)) else None
    return wait_until(check)


def chain(n: int) -> list[str]:
    return [f"(def a{i} {i}) '(!extend)" for i in range(n)] + ['"done"']


def test_run_persists_events_steps_versions_and_effects(user, scripted, tmp_path):
    run = runner.start_run(user, io_config(scripted, tmp_path), "io")
    run = finish(run)
    assert run.status == Run.Status.FINISHED, run.error
    assert run.value == '[8 "count.txt"]'
    events = list(RunEvent.objects.filter(run=run).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert run.last_seq == len(events)
    assert events[0].type == "run_started" and events[-1].type == "run_finished"
    steps = list(Step.objects.filter(run=run).order_by("step_id"))
    assert [s.step_id for s in steps] == [0, 1, 2, 3]
    assert [s.status for s in steps] == ["continued", "continued", "continued", "completed"]
    assert steps[1].parent == 0 and steps[1].prefix_text().startswith("(quine completion")
    assert steps[3].program_text().startswith(steps[3].prefix_text())
    assert steps[3].completion == IO_SCRIPT[3]
    effects = list(Effect.objects.filter(run=run))
    names = [e.name for e in effects]
    assert names.count("io/spit") == 2 and names.count("io/slurp") == 1
    assert names.count("model/spell") == 4
    assert all(e.status == "live" for e in effects)
    assert run.totals["effects_executed"] == len(effects) and run.totals["steps"] == 4
    assert (tmp_path / "ws" / "count.txt").read_text() == "8"
    # persisted texts are compacted into program versions and expand back exactly
    started = [e for e in events if e.type == "step_started"]
    assert all(isinstance(e.data["prefix"], dict) and "$v" in e.data["prefix"] for e in started)
    expanded = [e for e in load_events(run) if e["type"] == "step_started"]
    assert [e["data"]["prefix"] for e in expanded] == [s.prefix_text() for s in steps]
    stored = sum(len(t) for t in ProgramVersion.objects.filter(run=run).values_list("tail", flat=True))
    assert stored < sum(len(s.program_text()) + len(s.prefix_text()) for s in steps)


def test_unknown_model_fails_the_run_cleanly(user):
    run = runner.start_run(user, RunConfig(prompt="x", model="nonsense"), "bad")
    run = finish(run)
    assert run.status == Run.Status.FAILED
    assert "unknown model" in run.error
    assert RunEvent.objects.filter(run=run, type="run_failed").exists()


def test_pause_at_breakpoint_then_resume_and_step(user, scripted):
    cfg = RunConfig(prompt="P", model=scripted(chain(3)), breakpoints=Breakpoints(before_model=True))
    run = runner.start_run(user, cfg, "bp")
    run = wait_status(run, "paused")
    assert run.pause["point"] == "before_model" and run.pause["step"] == 0
    assert run.pause["text"].startswith("(quine completion")
    assert Step.objects.get(run=run, step_id=0).status == "paused"
    assert runner.control(run, "resume").ok
    wait_pause(run, 1)
    # step: run to the next pause point; stepping pauses at every point (the model call's
    # effect gate included) until the completion of step 1 is there to edit
    seen = []
    for _ in range(4):
        before = Run.objects.get(pk=run.pk).pause["seq"]
        assert runner.control(run, "step").ok
        r = wait_until(lambda: (x := Run.objects.get(pk=run.pk)).status == "paused"
                       and x.pause["seq"] > before and x)
        seen.append(r.pause["point"])
        assert r.pause["reason"] == "stepping"
        if r.pause["point"] == "after_completion":
            break
    assert seen[-1] == "after_completion" and r.pause["step"] == 1, seen
    assert not runner.control(run, "approve").ok     # nothing to approve here
    assert runner.control(run, "stop").ok
    run = finish(run)
    assert run.status == Run.Status.STOPPED


def test_pause_requested_while_running(user, scripted):
    script = [{"text": f"(def a{i} {i}) '(!extend)", "latency": 0.05} for i in range(40)] + ['"done"']
    run = runner.start_run(user, RunConfig(prompt="P", model=scripted(script)), "pause")
    wait_until(lambda: Step.objects.filter(run=run).count() >= 2)
    res = runner.control(run, "pause")
    assert res.ok
    run = wait_status(run, "paused")
    assert run.pause["reason"] == "pause requested"
    assert runner.control(run, "resume").ok
    run = finish(run, 60)
    assert run.status == "finished" and run.value == '"done"'


def test_edit_refused_with_line_and_col_then_accepted(user, scripted):
    cfg = RunConfig(prompt="P", model=scripted(["(def x 1) '(!extend)", "(+ x 1)"]),
                    breakpoints=Breakpoints(after_completion=True))
    run = runner.start_run(user, cfg, "edit")
    run = wait_status(run, "paused")
    program = run.pause["text"]
    assert run.pause["point"] == "after_completion" and program.endswith("(def x 1) '(!extend)")
    bad = program.replace("(def x 1)", "(def x 1))\n (def y ]")
    res = runner.control(run, "edit", bad, "alice")
    assert not res.ok
    assert res.line is not None and res.col is not None
    assert res.text == bad                                   # the text is kept
    run.refresh_from_db()
    assert run.status == "paused" and run.pause["draft"] == bad
    assert run.pause["draft_error"]["line"] == res.line
    good = program.replace("(def x 1)", "(def x 41)")
    res = runner.control(run, "edit", good, "alice")
    assert res.ok, res
    run = wait_pause(run, 1, "after_completion")   # the next step's
    assert runner.control(run, "resume").ok
    run = finish(run)
    assert run.status == "finished" and run.value == "42"
    edit = Edit.objects.get(run=run)
    assert edit.step_id == 0 and edit.point == "after_completion" and edit.author == user
    assert edit.after_version.text() == good and edit.before_version.text() == program
    prov = Step.objects.get(run=run, step_id=0).provenance
    assert any(seg["source"] == "human" and seg.get("author") == "alice" for seg in prov)


def test_fork_replays_from_the_cache_then_goes_live(user, scripted, tmp_path):
    parent = finish(runner.start_run(user, io_config(scripted, tmp_path), "parent"))
    assert parent.status == "finished"
    fork = finish(runner.fork_run(parent, user, 1))
    assert fork.status == "finished", fork.error
    assert fork.parent_run_id == parent.pk and fork.fork_step == 1
    assert fork.value == parent.value
    by_step: dict[int, set[str]] = {}
    for e in Effect.objects.filter(run=fork):
        by_step.setdefault(e.step_id, set()).add(e.status)
    assert by_step[0] == {"hit"} and by_step[1] == {"hit"}
    assert by_step[2] <= {"live", "miss"} and by_step[3] <= {"live", "miss"}
    assert fork.totals["effects_reused"] == sum(
        1 for e in Effect.objects.filter(run=fork) if e.status == "hit") >= 4
    # the parent is untouched, and sees its fork
    assert Effect.objects.filter(run=parent).exclude(status="live").count() == 0
    assert list(parent.forks.all()) == [fork]


def test_fork_with_an_edit(user, scripted):
    parent = finish(runner.start_run(
        user, RunConfig(prompt="P", model=scripted(["(def x 1) '(!extend)", "(+ x 1)"])), "p"))
    assert parent.value == "2"
    program = Step.objects.get(run=parent, step_id=0).program_text()
    with pytest.raises(runner.RunRefused) as refused:
        runner.fork_run(parent, user, 0, text=program + " )) (")
    assert refused.value.result is not None and refused.value.result.line is not None
    fork = finish(runner.fork_run(parent, user, 0, text=program.replace("(def x 1)", "(def x 9)")))
    assert fork.status == "finished" and fork.value == "10"
    assert Edit.objects.filter(run=fork, step_id=0).count() == 1
    assert Run.objects.get(pk=parent.pk).value == "2"


def test_resume_interrupted_equals_uninterrupted(user, scripted, tmp_path):
    """In-process version of the restart test: a run's persisted events up to a pause are
    copied onto a run row marked interrupted (what a crashed server leaves), which is then
    resumed from its record."""
    reference = finish(runner.start_run(user, io_config(scripted, tmp_path), "reference"))
    ws2 = tmp_path / "ws2"
    ws2.mkdir()
    cfg = io_config(scripted, tmp_path)
    cfg.workspace = str(ws2)
    cfg.breakpoints = Breakpoints(before_model=True)
    partial = runner.start_run(user, cfg, "partial")
    wait_pause(partial, 0)
    runner.control(partial, "resume")
    wait_pause(partial, 1)
    runner.control(partial, "resume")
    wait_pause(partial, 2)
    partial.refresh_from_db()
    crashed = Run.objects.create(owner=user, title="crashed", status=Run.Status.INTERRUPTED,
                                 config=dict(partial.config, breakpoints={}), last_seq=partial.last_seq)
    events = load_events(partial)
    from spellide.web.runner.persist import RunPersister
    from spellide.spell.api import Event
    writer = RunPersister(crashed, threaded=False, broadcast=False)
    for e in events:
        writer(Event(e["seq"], e["type"], e["data"], e["ts"]))
    crashed.refresh_from_db()
    crashed.status = Run.Status.INTERRUPTED
    crashed.save()
    executed_before = crashed.totals["effects_executed"]
    runner.control(partial, "stop")
    resumed = runner.resume_interrupted(crashed)
    resumed = finish(resumed)
    assert resumed.status == "finished", resumed.error
    assert resumed.value == reference.value
    assert resumed.segment == 1
    seqs = list(RunEvent.objects.filter(run=resumed).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    live_effects = Effect.objects.filter(run=resumed, status__in=["live", "miss"]).count()
    assert live_effects == Effect.objects.filter(run=reference).count()
    assert resumed.totals["effects_executed"] == reference.totals["effects_executed"]
    assert executed_before > 0 and Effect.objects.filter(run=resumed, segment=1, status="hit").count() == executed_before
    # no io effect ran twice: each (step, ordinal) has exactly one live execution
    keys = list(Effect.objects.filter(run=resumed, status__in=["live", "miss"]).values_list("step_id", "ordinal"))
    assert len(keys) == len(set(keys))


def test_mark_interrupted_runs_leaves_own_runs(user, scripted):
    cfg = RunConfig(prompt="P", model=scripted(chain(2)), breakpoints=Breakpoints(before_model=True))
    mine = runner.start_run(user, cfg, "mine")
    wait_status(mine, "paused")
    ghost = Run.objects.create(owner=user, title="ghost", status="running", worker="otherhost-gone:1:x")
    dead = Run.objects.create(owner=user, title="dead", status="paused",
                              worker=f"{runner.PROCESS_ID.split(':')[0]}:999999:abc")
    queued = Run.objects.create(owner=user, title="queued", status="queued", worker="")
    assert runner.mark_interrupted_runs() == 2
    assert Run.objects.get(pk=mine.pk).status == "paused"
    assert Run.objects.get(pk=ghost.pk).status == "running"   # another host: cannot tell
    assert Run.objects.get(pk=dead.pk).status == "interrupted"
    assert Run.objects.get(pk=queued.pk).status == "interrupted"
    # said with an event, like every change a page shows
    (last,) = RunEvent.objects.filter(run=dead)
    assert (last.seq, last.type, last.data["kind"]) == (1, "run_failed", "interrupted")
    assert Run.objects.get(pk=dead.pk).last_seq == 1
    runner.control(mine, "stop")
    finish(mine)


APPEND_SCRIPT = [f"'(!call-now w{i} (io/spit \"log.txt\" \"line {i}\\n\" {{:append true}}))" for i in range(4)] + [
    "'(!call-now final (io/slurp \"log.txt\"))", "(:ok final)"]


def append_run_paused(user, scripted, tmp_path, title: str, step: int):
    """The APPEND_SCRIPT agent run to the end in one workspace (the reference), and again in
    another, paused before the model call of ``step``. Returns (reference, paused run, its workspace,
    the reference's workspace)."""
    model = scripted(APPEND_SCRIPT)
    ref_ws, ws = tmp_path / "ref", tmp_path / "ws"
    ref_ws.mkdir()
    ws.mkdir()
    reference = finish(runner.start_run(user, RunConfig(prompt="P", model=model, workspace=str(ref_ws)), "ref"))
    run = runner.start_run(user, RunConfig(prompt="P", model=model, workspace=str(ws),
                                           breakpoints=Breakpoints(before_model=True)), title)
    for k in range(step):
        wait_pause(run, k)
        runner.control(run, "resume")
    wait_pause(run, step)
    return reference, run, ws, ref_ws


def test_effect_lost_before_persisting_is_recovered_from_the_journal(user, scripted, tmp_path):
    """The process died after an io/ effect ran but before its event reached the database: the
    effect journal written by the run's process has it, so the resume serves it from the cache
    instead of appending the line a second time."""
    from spellide.spell.api import Event
    from spellide.spell.api import EffectJournal
    from spellide.web.runner.journal import journal_path
    from spellide.web.runner.persist import RunPersister

    reference, partial, ws, ref_ws = append_run_paused(user, scripted, tmp_path, "partial", 3)
    assert reference.status == "finished"
    events = load_events(partial)
    runner.control(partial, "stop")
    finish(partial)
    cut = max(i for i, e in enumerate(events) if e["type"] == "effect"
              and e["data"]["effect"]["name"] == "io/spit")
    lost = events[cut]
    crashed = Run.objects.create(owner=user, title="crashed", config=dict(partial.config, breakpoints={}))
    writer = RunPersister(crashed, threaded=False, broadcast=False)
    for e in events[:cut]:
        writer(Event(e["seq"], e["type"], e["data"], e["ts"]))
    journal = EffectJournal(journal_path(crashed.public_id), 0)
    journal.append(lost["seq"], lost["data"]["effect"])
    journal.close()
    Run.objects.filter(pk=crashed.pk).update(status=Run.Status.INTERRUPTED)
    crashed.refresh_from_db()
    assert (ws / "log.txt").read_text() == "line 0\nline 1\nline 2\n"
    resumed = finish(runner.resume_interrupted(crashed))
    assert resumed.status == "finished", resumed.error
    assert resumed.value == reference.value
    assert (ws / "log.txt").read_text() == (ref_ws / "log.txt").read_text()
    executed = list(Effect.objects.filter(run=resumed, status__in=["live", "miss"]).values_list("step_id", "ordinal"))
    assert len(executed) == len(set(executed)) == reference.totals["effects_executed"]
    assert resumed.totals["effects_executed"] == reference.totals["effects_executed"]
    assert not journal_path(resumed.public_id).exists()      # removed when the run ended


def test_a_killed_run_process_leaves_the_run_interrupted_and_it_resumes_to_the_same_result(user, scripted,
                                                                                          tmp_path):
    """The run's child process dies (here: killed while the run waits at a pause point): the
    run does not hang as paused, nor fail; it is interrupted, and resuming it gives the result
    of an uninterrupted run with no effect executed twice."""
    import os
    import signal

    reference, run, ws, ref_ws = append_run_paused(user, scripted, tmp_path, "killed", 2)
    os.kill(runner.get_active(run).execution.process.pid, signal.SIGKILL)
    run = finish(run)
    assert run.status == "interrupted"
    assert "killed by signal 9" in run.error
    last = load_events(run)[-1]
    assert last["type"] == "run_failed" and last["data"]["kind"] == "interrupted"
    from spellide.web.fragments import render_event_html
    assert 'data-state="interrupted"' in render_event_html(run, last)   # a watching page offers resume
    assert runner.control(run, "resume").ok is False
    Run.objects.filter(pk=run.pk).update(config=dict(run.config, breakpoints={}))
    resumed = finish(runner.resume_interrupted(Run.objects.get(pk=run.pk)))
    assert resumed.status == "finished", resumed.error
    assert resumed.value == reference.value
    assert (ws / "log.txt").read_text() == (ref_ws / "log.txt").read_text()
    assert resumed.totals["effects_executed"] == reference.totals["effects_executed"]


def test_inline_writer_flushes_at_step_starts_and_after_a_short_delay(user):
    """Inline persistence: a step's start is written at once; streamed text that is not
    followed by a step boundary is written by the flusher within MAX_DELAY."""

    from spellide.spell.api import Event
    from spellide.web.runner import persist
    from spellide.web.runner.persist import RunPersister

    run = Run.objects.create(owner=user, title="inline")
    writer = RunPersister(run, mode="inline", broadcast=False)
    writer(Event(1, "run_started", {"config": {}}))
    writer(Event(2, "step_started", {"step": 0, "parent": None, "depth": 1, "prefix": "(do ", "model": "m"}))
    assert RunEvent.objects.filter(run=run).count() == 2
    assert Step.objects.get(run=run, step_id=0).prefix_text() == "(do "
    writer(Event(3, "completion_delta", {"step": 0, "text": "4"}))
    assert RunEvent.objects.filter(run=run).count() == 2          # waiting for its batch...
    wait_until(lambda: RunEvent.objects.filter(run=run, seq=3).exists(), timeout=2 * persist.MAX_DELAY + 1)
    writer(Event(4, "completion_delta", {"step": 0, "text": "2)"}))
    writer.close()                                                  # ...or for the end
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == [1, 2, 3, 4]
    assert Run.objects.get(pk=run.pk).last_seq == 4


def test_inline_writer_behind_the_run_writes_several_steps_in_one_transaction(user, monkeypatch):
    """When more of the run's events already wait (the relay fell behind), a step's start is
    not written alone: the steps after it join its batch, which the flusher still writes
    within MAX_DELAY; caught up, a step's start is written at once again."""
    from spellide.spell.api import Event
    from spellide.web.runner import persist
    from spellide.web.runner.persist import RunPersister

    monkeypatch.setattr(persist, "MAX_DELAY", 0.5)   # the flusher must not write step 0 alone
    run = Run.objects.create(owner=user, title="behind")
    writer = RunPersister(run, mode="inline", broadcast=False)
    waiting = [True]
    writer.behind = lambda: waiting[0]
    writer(Event(1, "run_started", {"config": {}}))
    for seq, sid in ((2, 0), (3, 1)):
        writer(Event(seq, "step_started", {"step": sid, "parent": None, "depth": 1, "prefix": "(do ", "model": "m"}))
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == [1]
    wait_until(lambda: Step.objects.filter(run=run).count() == 2, timeout=2 * persist.MAX_DELAY + 1)
    assert list(RunEvent.objects.filter(run=run).values_list("seq", flat=True)) == [1, 2, 3]
    waiting[0] = False
    writer(Event(4, "step_started", {"step": 2, "parent": None, "depth": 1, "prefix": "(do ", "model": "m"}))
    assert RunEvent.objects.filter(run=run, seq=4).exists()
    writer.close()


def test_streamed_pieces_carry_their_offset_and_the_step_keeps_the_text_so_far(user):
    """Each persisted piece says where it goes in the step's text (UTF-16 units, as the page
    counts), a reset starts over, and the step row holds the text so far for a page that
    opens the step mid-stream."""
    from spellide.spell.api import Event
    from spellide.web.fragments import render_event_html
    from spellide.web.runner.persist import RunPersister

    run = Run.objects.create(owner=user, title="stream")
    writer = RunPersister(run, mode="sync", broadcast=False)
    writer(Event(1, "step_started", {"step": 0, "parent": None, "depth": 1, "prefix": "(do ", "model": "m"}))
    for seq, data in ((2, {"text": "(str "}), (3, {"text": '"😀'}), (4, {"text": '<b>"'}),
                      (5, {"text": "", "reset": True}), (6, {"text": "(+ 1"}), (7, {"text": " 2)"})):
        writer(Event(seq, "completion_delta", {"step": 0, **data}))
    writer.close()
    ats = [e.data["at"] for e in RunEvent.objects.filter(run=run, type="completion_delta").order_by("seq")]
    assert ats == [0, 5, 8, 0, 0, 4]             # the emoji counts two, as in the browser
    assert Step.objects.get(run=run, step_id=0).completion == "(+ 1 2)"
    def html(seq: int) -> str:
        e = RunEvent.objects.get(run=run, seq=seq)
        return render_event_html(run, {"seq": e.seq, "type": e.type, "data": e.data})

    assert 'hx-target="#stream-sink"' in html(4) and 'data-step="0" data-at="8">&lt;b&gt;&quot;</span>' in html(4)
    assert 'data-reset="1"' in html(5)


def test_a_batch_renders_the_state_it_leaves_in_a_bounded_number_of_queries(user, django_assert_max_num_queries):
    """A batch's fragments carry whole rows read from the database after its commit (three
    queries however many events and steps: the rows, their effects, and their paused time,
    which a step's time leaves out), with the step count and each step's duration."""
    from spellide.spell.api import Event
    from spellide.web.fragments import render_batch
    from spellide.web.runner.persist import RunPersister

    run = Run.objects.create(owner=user, title="counts")
    writer = RunPersister(run, mode="sync", broadcast=False)
    writer(Event(1, "step_started", {"step": 0, "parent": None, "depth": 1, "prefix": "(do ", "model": "m"}, ts=100.0))
    writer(Event(2, "step_finished", {"step": 0, "value": "1", "continued_by": 1}, ts=100.25))
    writer(Event(3, "step_started", {"step": 1, "parent": 0, "depth": 2, "prefix": "(do 1 ", "model": "m"}, ts=100.3))
    writer.close()
    events = [{"seq": e.seq, "type": e.type, "data": e.data} for e in RunEvent.objects.filter(run=run).order_by("seq")]
    with django_assert_max_num_queries(3):
        items = render_batch(writer.run, events)
    assert [seq for seq, _ in items] == [1, 2, 3]
    state = items[-1][1]
    assert 'id="step-row-0"' in state and 'data-status="continued"' in state and "250 ms" in state
    assert 'id="step-row-1"' in state and 'data-status="running"' in state and 'data-parent="0"' in state
    assert '<hx-partial hx-target="#step-count" hx-swap="innerHTML" data-seq="3">2</hx-partial>' in state
    assert '<span title="steps" id="run-steps">2 steps</span>' in state
    assert "step-row" not in items[0][1] + items[1][1]     # the state comes once, after the last event


def test_an_event_that_fails_to_render_still_advances_the_page_and_says_so(user, monkeypatch, caplog):
    """A rendering bug must not cost the page its place in the stream (it would take the
    events for a gap forever, or skip them silently): it gets their numbers and a notice."""
    from spellide.web.runner import persist

    def broken(run, events, closed=()):
        raise ValueError("template bug")

    run = Run.objects.create(owner=user, title="broken render")
    monkeypatch.setattr(persist, "render_batch", broken)
    items = persist.render(run, [{"seq": 7, "type": "step_started", "data": {"step": 0}}])
    assert [seq for seq, _ in items] == [7]
    assert '<hx-partial hx-target="#ws-seq" hx-swap="none" data-seq="7"></hx-partial>' in items[0][1]
    assert "reload the page" in items[0][1] and "template bug" not in items[0][1]
    assert "rendering events 7-7" in caplog.text


def test_the_live_frames_carry_what_persisting_derived(user, monkeypatch):
    """The frames broadcast while a run streams carry each piece's offset, the step count and
    the step's duration, as a reload's frames do (they were rendered from the raw events, so
    pieces were appended blindly and each step start cost a COUNT query)."""
    from spellide.spell.api import Event
    from spellide.web.runner import persist

    sent: list[dict] = []
    monkeypatch.setattr(persist.broadcaster, "may_have_listeners", lambda group: True)
    monkeypatch.setattr(persist.broadcaster, "send", lambda group, message: sent.append(message))
    run = Run.objects.create(owner=user, title="live frames")
    writer = persist.RunPersister(run, mode="sync", broadcast=True)
    writer(Event(1, "step_started", {"step": 0, "parent": None, "depth": 1, "prefix": "(do ", "model": "m"}, ts=50.0))
    writer(Event(2, "completion_delta", {"step": 0, "text": "(+ 1"}))
    writer(Event(3, "completion_delta", {"step": 0, "text": " 2)"}))
    writer(Event(4, "step_finished", {"step": 0, "value": "3"}, ts=50.5))
    writer.close()
    frames = {seq: html for m in sent for seq, html in m["events"]}
    assert '<span title="steps" id="run-steps">1 steps</span>' in frames[1] and 'id="step-row-0"' in frames[1]
    assert 'data-step="0" data-at="0">(+ 1</span>' in frames[2]
    assert 'data-step="0" data-at="4"> 2)</span>' in frames[3]
    assert "500 ms" in frames[4]
    # the stored events keep their text references, not the texts
    assert RunEvent.objects.get(run=run, seq=1).data["prefix"] == {"$v": Step.objects.get(run=run).prefix_version_id}


def test_a_run_that_ends_with_open_steps_ends_them_in_its_final_event(user, monkeypatch):
    """Stopped at a pause: the paused step and the steps waiting on it end with the run, in the
    final event's transaction, and the final frame carries their rows (no page keeps them
    paused or running while a reload shows them failed)."""
    from spellide.spell.api import Event
    from spellide.web import stepinfo
    from spellide.web.runner import persist

    sent: list[dict] = []
    monkeypatch.setattr(persist.broadcaster, "may_have_listeners", lambda group: True)
    monkeypatch.setattr(persist.broadcaster, "send", lambda group, message: sent.append(message))
    run = Run.objects.create(owner=user, title="stopped")
    writer = persist.RunPersister(run, mode="sync", broadcast=True)
    writer(Event(1, "run_started", {"config": {}}))
    writer(Event(2, "step_started", {"step": 0, "parent": None, "depth": 1, "prefix": "(do ", "model": "m"}))
    writer(Event(3, "step_started", {"step": 1, "parent": 0, "depth": 2, "prefix": "(do 1 ", "model": "m"}))
    writer(Event(4, "paused", {"point": "before_model", "step": 1, "text": "(do 1 ", "reason": "breakpoint"}))
    writer(Event(5, "resumed", {"action": "stop", "edited": False, "step": 1, "point": "before_model"}))
    writer(Event(6, "run_failed", {"error": "Run stopped by the user", "kind": "stopped"}))
    writer.close()
    steps = {s.step_id: s for s in Step.objects.filter(run=run)}
    assert {s.status for s in steps.values()} == {"failed"}
    assert steps[1].error == "Run stopped by the user" and steps[1].finished_at is not None
    final = dict(item for m in sent for item in m["events"])[6]
    assert final.count('data-status="failed"') == 2 and 'data-run-state="stopped"' in final
    assert 'hx-target="#pause-panel" hx-swap="innerHTML" data-seq="6"></hx-partial>' in final  # panel emptied
    run.refresh_from_db()
    assert run.status == "stopped" and stepinfo.status_info(run)["word"] == "stopped"


def test_a_run_stopped_by_its_budget_is_stopped_not_failed(user, scripted):
    usage = {"input_tokens": 10, "output_tokens": 10, "cost": 0.01}
    model = scripted([{"text": f"(def c{i} {i}) '(!extend)", "usage": usage} for i in range(5)])
    run = finish(runner.start_run(user, RunConfig(prompt="P", model=model, budget=0.015), "budget"))
    from spellide.web import stepinfo
    assert run.status == "stopped" and run.error_kind == "budget-exceeded", (run.status, run.error)
    info = stepinfo.status_info(run)
    assert info["word"] == "stopped by budget" and "Budget exceeded" in info["detail"]
    assert not Step.objects.filter(run=run, status__in=["running", "paused"]).exists()


def test_effects_lost_past_a_gap_are_stored_as_the_next_events(user, scripted, tmp_path):
    """The process died with a batch unwritten: the events before an io/ effect are lost and
    the journal has the effect under a number past them. Resumed, the run's events are
    numbered without a gap and the effect does not run twice."""
    from spellide.spell.api import Event
    from spellide.spell.api import EffectJournal
    from spellide.web.runner.journal import journal_path
    from spellide.web.runner.persist import RunPersister

    reference, partial, ws, ref_ws = append_run_paused(user, scripted, tmp_path, "partial", 3)
    events = load_events(partial)
    runner.control(partial, "stop")
    finish(partial)
    cut = max(i for i, e in enumerate(events) if e["type"] == "effect"
              and e["data"]["effect"]["name"] == "io/spit")
    kept = cut - 2                                   # two more events never reached the database
    assert all(e["type"] != "step_started" for e in events[kept:cut])
    crashed = Run.objects.create(owner=user, title="crashed", config=dict(partial.config, breakpoints={}))
    writer = RunPersister(crashed, threaded=False, broadcast=False)
    for e in events[:kept]:
        writer(Event(e["seq"], e["type"], e["data"], e["ts"]))
    journal = EffectJournal(journal_path(crashed.public_id), 0)
    for e in events[kept:cut + 1]:
        if e["type"] == "effect" and e["data"]["effect"].get("status") in ("live", "miss"):
            journal.append(e["seq"], e["data"]["effect"])
    journal.close()
    Run.objects.filter(pk=crashed.pk).update(status=Run.Status.INTERRUPTED)
    crashed.refresh_from_db()
    resumed = finish(runner.resume_interrupted(crashed))
    assert resumed.status == "finished", resumed.error
    seqs = list(RunEvent.objects.filter(run=resumed).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, resumed.last_seq + 1))
    assert (ws / "log.txt").read_text() == (ref_ws / "log.txt").read_text()
    assert resumed.value == reference.value


def test_each_step_keeps_the_edit_trace_the_run_reported(user, scripted, client):
    """The diff tab renders the core's trace; the run's events bring it to the step row."""
    run = finish(runner.start_run(user, RunConfig(prompt="p", model=scripted(["(def a 1) (prune) '(!extend)", "2"])), "t"))
    assert run.status == Run.Status.FINISHED, run.error
    steps = list(Step.objects.filter(run=run).order_by("step_id"))
    rows = [s for s in steps[1].edit_trace["sections"] if s["name"] == "body"][0]["rows"]
    removed = [r for r in rows if r["op"] == "removed"]
    assert [r["by"] for r in removed] == ["prune", "prune"]
    program = steps[0].program_text()
    assert program[removed[0]["old"][1]:removed[0]["old"][2]] == "(def a 1)"
    # the trace is kept on the step, not a second time in the event log
    assert all("trace" not in e.data for e in RunEvent.objects.filter(run=run, type="program"))
    # the diff and the tree of the step show it
    client.force_login(user)
    diff = client.get(f"/runs/{run.public_id}/steps/1/tab/diff/").content.decode()
    assert "pruned" in diff and "(def a 1)" in diff
    tree = client.get(f"/runs/{run.public_id}/steps/1/tab/tree/").content.decode()
    assert 'class="chip dk dk-appended change">appended by the model' in tree
