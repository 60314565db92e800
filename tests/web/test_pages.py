"""The IDE's pages through Django's test client: they render, escape run text, check access,
and stay bounded on long runs."""

from __future__ import annotations

import json
import re

import pytest

from django.template.loader import render_to_string

from spellide.web import stepinfo
from spellide.web.fragments import _nav, render_event_html
from spellide.web.models import Run, Step

from .pagedata import add_human_edit, make_run

pytestmark = pytest.mark.django_db

PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]
TABS = ("tree", "source", "diff", "effects", "value", "sent")


def raw_payload_free(html: str) -> bool:
    """No payload survives as markup: only escaped forms may appear."""
    return "<script>alert" not in html and "<img src=x" not in html and "onerror=alert(2)>" not in html


@pytest.fixture
def run(user):
    return make_run(user, 6, title="count <b>down</b>")


def test_run_list_shows_own_runs_and_the_start_form(client, user, other_user, run):
    make_run(other_user, 2, title="bob's run")
    client.force_login(user)
    html = client.get("/").content.decode()
    assert "count &lt;b&gt;down&lt;/b&gt;" in html
    assert "bob&#x27;s run" not in html and "bob's run" not in html
    assert 'action="/runs/start/"' in html
    for field in ('name="prompt"', 'name="program"', 'name="model"', 'name="depth"', 'name="budget"',
                  'name="workspace"', 'name="bp_before_model"', 'name="effect_kinds"'):
        assert field in html
    assert 'value="demo:countdown"' in html  # bundled demos are offered as models


def test_login_is_required(client, run):
    for url in ("/", f"/runs/{run.public_id}/", f"/runs/{run.public_id}/steps/1/",
                f"/runs/{run.public_id}/steps/1/tab/diff/", f"/runs/{run.public_id}/effects/"):
        r = client.get(url)
        assert r.status_code == 302 and "/accounts/login/" in r["Location"], url


def test_run_page_renders_steps_status_and_detail(client, user, run):
    client.force_login(user)
    r = client.get(f"/runs/{run.public_id}/")
    html = r.content.decode()
    assert r.status_code == 200
    assert html.count('class="row"') == 6
    assert 'id="run-state" data-state="finished"' in html
    assert 'data-selected="5"' in html            # the latest step is open
    assert 'hx-ws:connect="/ws/runs/' in html and 'hx-swap="none"' in html
    assert f"last_seq={run.last_seq}" in html
    assert 'class="tree"' in html                  # program tree is the default tab
    assert 'name="csrf-token"' in html


@pytest.mark.parametrize("tab", TABS)
def test_every_tab_renders(client, user, run, tab):
    client.force_login(user)
    r = client.get(f"/runs/{run.public_id}/steps/3/tab/{tab}/")
    assert r.status_code == 200
    assert f'data-tab="{tab}"' in r.content.decode()
    page = client.get(f"/runs/{run.public_id}/steps/3/?tab={tab}")
    assert page.status_code == 200 and f'data-tab="{tab}"' in page.content.decode()


def test_htmx_detail_partial_is_only_the_detail(client, user, run):
    client.force_login(user)
    r = client.get(f"/runs/{run.public_id}/steps/2/?part=detail", HTTP_HX_REQUEST="true")
    html = r.content.decode()
    assert r.status_code == 200 and html.lstrip().startswith('<section class="detail"')
    assert "<html" not in html and 'data-step="2"' in html


def test_unknown_step_or_tab_is_404(client, user, run):
    client.force_login(user)
    assert client.get(f"/runs/{run.public_id}/steps/99/").status_code == 404
    assert client.get(f"/runs/{run.public_id}/steps/1/tab/nope/").status_code == 404
    assert client.get("/runs/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_source_tab_tells_prefix_model_and_human_apart(client, user, run):
    add_human_edit(run, 3, user, "(def human-touch 1)")
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/steps/3/tab/source/").content.decode()
    assert 'class="prov prov-prefix"' in html and 'class="prov prov-model"' in html
    assert 'class="prov prov-human" title="edited by alice"' in html
    assert 'id="L1"' in html


def test_diff_tab_marks_the_human_edit_with_author(client, user, run):
    add_human_edit(run, 3, user, "(def human-touch 1)")
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/steps/3/tab/diff/").content.decode()
    assert "Edited by <b>alice</b> before model call" in html
    row = re.search(r'<div class="drow dk-human">(.*?)</div>', html, re.S)
    assert row and "(def human-touch 1)" in row.group(1) and "alice" in row.group(1)
    assert "appended by the model" in html
    # step 0 is compared with the initial program built from the prompt
    html0 = client.get(f"/runs/{run.public_id}/steps/0/tab/diff/").content.decode()
    assert "the initial program" in html0


def test_value_tab_shows_error_with_position(client, user):
    run = make_run(user, 3, error_step=2)
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/steps/2/tab/value/").content.decode()
    assert "Unbound symbol" in html and "line 1, column" in html
    compact = client.get(f"/runs/{run.public_id}/steps/2/tab/source/?layout=compact").content.decode()
    assert 'class="sl err-line" id="L1"' in compact
    # laid out, the error's line is the one where the failing step's completion starts
    src = client.get(f"/runs/{run.public_id}/steps/2/tab/source/").content.decode()
    line = re.search(r'class="sl err-line" id="L(\d+)"[^>]*>(.*?)</span>\n?<span class="sl', src, re.S)
    assert line and int(line.group(1)) > 1 and "prov-model" in line.group(2)


def test_source_tab_is_pretty_printed_with_the_compact_text_a_click_away(client, user, run):
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/steps/3/tab/source/").content.decode()
    lines = re.findall(r'<span class="sl[^"]*" id="L(\d+)"[^>]*>(.*?)</span>(?=<span class="sl|</pre>)', html, re.S)
    assert len(lines) > 5 and 'data-layout="pretty"' in html
    text = [re.sub(r"<[^>]+>", "", body) for _, body in lines]
    assert text[0].rstrip() == "(quine completion" and text[1].startswith("  (eval")
    assert all(len(t.rstrip("\n")) <= 88 for t in text)
    # provenance moved with the text: the model's part is still the completion
    (n3,) = [body for (_, body), t in zip(lines, text) if "(def n3 3)" in t]
    assert "prov-model" in n3 and "prov-prefix" not in re.sub(r'<span class="prov prov-prefix"[^>]*>\s*</span>', "", n3)
    assert 'id="layout-compact"' in html
    compact = client.get(f"/runs/{run.public_id}/steps/3/tab/source/?layout=compact").content.decode()
    assert 'data-layout="compact"' in compact and 'id="L2"' not in compact and 'id="layout-pretty"' in compact
    # a selection from the tree (compact offsets) lands on the same text laid out
    sel = client.get(f"/runs/{run.public_id}/steps/3/tab/source/?sel=0-6").content.decode()
    assert 'data-sel="0-6"' in sel


def test_payloads_render_as_inert_text_everywhere(client, user):
    payload = PAYLOADS[0] + PAYLOADS[1]
    run = make_run(user, 4, payload=payload.replace('"', "'"), title=payload, value=payload, error_step=3)
    Run.objects.filter(pk=run.pk).update(error=payload, status="failed")
    client.force_login(user)
    urls = ["/", f"/runs/{run.public_id}/", f"/runs/{run.public_id}/effects/", f"/runs/{run.public_id}/forks/"]
    urls += [f"/runs/{run.public_id}/steps/{s}/tab/{t}/" for s in (2, 3) for t in TABS]
    urls += [f"/runs/{run.public_id}/window/?before=3", f"/runs/{run.public_id}/steps/1/tree/?path=0.1"]
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200, url
        html = r.content.decode()
        assert raw_payload_free(html), url
    html = client.get(f"/runs/{run.public_id}/steps/2/tab/effects/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_fragments_escape_payloads_and_carry_seq(user):
    payload = (PAYLOADS[0] + PAYLOADS[1]).replace('"', "'")
    run = make_run(user, 3, payload=payload, value=payload, error_step=2)
    Step.objects.filter(run=run, step_id=2).update(error=payload)
    Run.objects.filter(pk=run.pk).update(status="paused", pause={
        "point": "after_completion", "step": 2, "text": payload, "reason": payload, "seq": 16})
    run.refresh_from_db()
    events = [
        {"seq": 10, "type": "step_started", "data": {"step": 2, "parent": 1, "depth": 3, "prefix": PAYLOADS[0], "model": "m"}},
        {"seq": 11, "type": "completion_delta", "data": {"step": 2, "text": PAYLOADS[1], "at": 0}},
        {"seq": 12, "type": "completion", "data": {"step": 2, "completion": PAYLOADS[0], "usage": {}}},
        {"seq": 13, "type": "program", "data": {"step": 2, "program": PAYLOADS[0], "provenance": []}},
        {"seq": 14, "type": "effect", "data": {"step": 2, "effect": {"name": "io/slurp", "args": PAYLOADS[1],
                                                                      "result": PAYLOADS[0], "status": "hit", "ordinal": 1}}},
        {"seq": 15, "type": "step_finished", "data": {"step": 2, "value": None, "error": PAYLOADS[1], "continued_by": None}},
        {"seq": 16, "type": "paused", "data": {"point": "after_completion", "step": 2, "text": PAYLOADS[0],
                                               "reason": PAYLOADS[1], "error": None, "effect": None}},
        {"seq": 17, "type": "resumed", "data": {"action": "continue", "edited": True, "author": PAYLOADS[1], "step": 2}},
        {"seq": 18, "type": "run_failed", "data": {"error": PAYLOADS[0]}},
        {"seq": 19, "type": "run_finished", "data": {"value": PAYLOADS[1]}},
        {"seq": 20, "type": "diverged", "data": {"step": 2, "what": PAYLOADS[0]}},
        {"seq": 21, "type": "run_started", "data": {"config": {}}},
    ]
    for e in events:
        html = render_event_html(run, e)
        assert raw_payload_free(html), e["type"]
        parts = re.findall(r"<hx-partial ([^>]*)>", html)
        assert parts, e["type"]
        for attrs in parts:
            assert f'data-seq="{e["seq"]}"' in attrs and "hx-target=" in attrs and "hx-swap=" in attrs
    # a step's fragment is its whole row as stored, whatever the event said
    started = render_event_html(run, events[0])
    assert 'hx-target="#step-row-2" hx-swap="outerHTML" data-seq="10" data-row="2"' in started
    assert 'data-parent="1"' in started and 'data-status="failed"' in started and 'data-depth="3"' in started
    fresh = render_to_string("spellide/parts.html#step_row", {
        "r": stepinfo._rows(run, [Step.objects.get(run=run, step_id=2)])[0], "nav": _nav(run)})
    assert fresh in render_event_html(run, events[4])
    assert 'hx-target="#step-row-' not in render_event_html(run, events[-1])   # no step: no row
    paused = render_event_html(run, events[6])
    assert 'hx-target="#pause-panel"' in paused and "<textarea" in paused
    assert 'data-state="paused"' in paused and 'data-run-state="paused"' in paused
    assert 'hx-target="#pause-panel"' not in started   # the editor is not replaced by other events


def test_share_link_is_read_only_and_needs_the_token(client, user, run):
    Run.objects.filter(pk=run.pk).update(share_token="tok-123")
    r = client.get("/share/tok-123/")                       # anonymous
    html = r.content.decode()
    assert r.status_code == 200 and "Read-only shared view" in html
    assert "hx-ws:connect" not in html and "/pause/" not in html and "Fork from here" not in html
    assert 'href="/share/tok-123/steps/5/"' in html
    for tab in TABS:
        assert client.get(f"/share/tok-123/steps/2/tab/{tab}/").status_code == 200
    assert client.get("/share/tok-123/effects/").status_code == 200
    assert client.get("/share/wrong/").status_code == 404
    # the owner's URLs still need a login
    assert client.get(f"/runs/{run.public_id}/").status_code == 302
    Run.objects.filter(pk=run.pk).update(share_token=None)
    assert client.get("/share/tok-123/").status_code == 404


def test_other_users_cannot_see_a_run(client, other_user, run):
    client.force_login(other_user)
    for url in (f"/runs/{run.public_id}/", f"/runs/{run.public_id}/steps/1/", f"/runs/{run.public_id}/steps/1/tab/source/",
                f"/runs/{run.public_id}/window/?after=1", f"/runs/{run.public_id}/effects/", f"/runs/{run.public_id}/forks/",
                f"/runs/{run.public_id}/steps/1/text/program/", f"/runs/{run.public_id}/steps/1/tree/?path=0"):
        assert client.get(url).status_code == 404, url


def test_staff_can_look_but_not_steer(client, django_user_model, run):
    staff = django_user_model.objects.create_user("carol", password="pw-carol-123", is_staff=True)
    client.force_login(staff)
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    assert 'id="run-controls"' not in html
    assert "Fork from here" in html   # anyone who may view may fork into their own runs


def test_window_is_bounded_on_long_runs(client, user):
    run = make_run(user, 1000, bulk=True)
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    assert html.count('class="row"') == 60
    assert 'id="rows-earlier"' in html and "940 earlier" in html and 'id="rows-later"' not in html
    deep = client.get(f"/runs/{run.public_id}/steps/500/").content.decode()
    ids = [int(x) for x in re.findall(r'id="step-row-(\d+)"', deep)]
    assert len(ids) == 60 and 500 in ids and ids == sorted(ids)
    assert "rows-earlier" in deep and "rows-later" in deep
    before = client.get(f"/runs/{run.public_id}/window/?before=470").content.decode()
    b_ids = [int(x) for x in re.findall(r'id="step-row-(\d+)"', before)]
    assert b_ids == list(range(410, 470)) and "410 earlier" in before
    after = client.get(f"/runs/{run.public_id}/window/?after=529&limit=1000").content.decode()
    a_ids = [int(x) for x in re.findall(r'id="step-row-(\d+)"', after)]
    assert a_ids[0] == 530 and len(a_ids) == 200       # capped
    # the page does not grow with the run: 1,000 steps cost about what 100 do
    small = make_run(user, 100, bulk=True)
    small_html = client.get(f"/runs/{small.public_id}/").content.decode()
    assert len(html) < len(small_html) * 2.5


def test_effect_cache_view_counts_and_filters(client, user):
    run = make_run(user, 5, payload="x")
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/effects/").content.decode()
    assert "Effect cache" in html and ">10</b><span>effects" in html
    assert ">5</b><span>misses" in html and "arguments changed" in html
    only = client.get(f"/runs/{run.public_id}/effects/?status=miss", HTTP_HX_REQUEST="true").content.decode()
    assert only.count('class="fx-row fxs-miss"') == 5 and "fxs-live" not in only
    named = client.get(f"/runs/{run.public_id}/effects/?name=io/").content.decode()
    assert "io/slurp" in named and "model/spell</td>" not in named


def test_fork_tree_is_visible_from_parent_and_fork(client, user):
    parent = make_run(user, 4, title="the parent")
    fork = make_run(user, 6, title="the fork", parent=parent, fork_step=2)
    client.force_login(user)
    for r in (parent, fork):
        html = client.get(f"/runs/{r.public_id}/forks/").content.decode()
        assert "the parent" in html and "the fork" in html and "forked at step #2" in html
    page = client.get(f"/runs/{fork.public_id}/").content.decode()
    assert "Forked from" in page and f"/runs/{parent.public_id}/steps/2/" in page
    fx = client.get(f"/runs/{fork.public_id}/effects/").content.decode()
    assert ">3</b><span>reused (hits)" in fx


def test_raw_texts_are_plain_text(client, user):
    run = make_run(user, 2, payload="<b>x</b>")
    client.force_login(user)
    r = client.get(f"/runs/{run.public_id}/steps/1/text/program/")
    assert r["Content-Type"].startswith("text/plain") and r["X-Content-Type-Options"] == "nosniff"
    assert "<b>x</b>" in r.content.decode()
    eff = run.effects.first()
    r = client.get(f"/runs/{run.public_id}/effects/{eff.pk}/args/")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")


def test_highlight_preview_reports_read_problems(client, user):
    client.force_login(user)
    ok = json.loads(client.post("/highlight/", {"text": "(do (def a 1)", "mode": "prefix"}).content)
    assert ok["ok"] and 't-k' in ok["html"]
    bad = json.loads(client.post("/highlight/", {"text": "(do\n  (def a 1)))", "mode": "program"}).content)
    assert not bad["ok"] and bad["line"] == 2 and bad["col"]
    esc = json.loads(client.post("/highlight/", {"text": PAYLOADS[0]}).content)
    assert "<script>" not in esc["html"]


def test_highlight_preview_checks_a_prefix_as_a_prefix_and_marks_the_place(client, user):
    """The issue's case: a prefix ending in an open string "reads" but swallows the completion."""
    client.force_login(user)
    text = '(quine completion (eval (do (def x 1)\n(def broken "unterminated <b>x'
    res = json.loads(client.post("/highlight/", {"text": text, "mode": "prefix"}).content)
    assert not res["ok"] and (res["line"], res["col"]) == (2, 13) and "inside a string" in res["message"]
    mark = re.search(r'<mark class="err-mark">(.*?)</mark>', res["html"])
    assert mark and re.sub(r"<[^>]+>", "", mark.group(1)) == '"'
    assert "<b>" not in res["html"] and "&lt;b&gt;" in res["html"]
    assert re.sub(r"<[^>]+>", "", res["html"]).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"') == text
    # the same text as a whole program is only incomplete (the runtime closes it)
    assert json.loads(client.post("/highlight/", {"text": text, "mode": "program"}).content)["ok"]


def test_tree_subtree_endpoint(client, user, run):
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/steps/3/tree/?path=0.1.0").content.decode()
    assert "k-do" in html and " open>" in html
    assert client.get(f"/runs/{run.public_id}/steps/3/tree/?path=9.9").status_code == 404


def test_source_view_of_a_long_program_is_a_window(client, user):
    run = make_run(user, 3, payload="y" * 70_000)   # programs of 70k, 140k, 210k characters
    client.force_login(user)
    tail = client.get(f"/runs/{run.public_id}/steps/2/tab/source/").content.decode()
    assert "showing characters" in tail and len(tail) < 600_000
    offset = int(re.search(r'data-offset="(\d+)"', tail).group(1))
    assert offset > 100_000                                        # the newest text by default
    near = client.get(f"/runs/{run.public_id}/steps/2/tab/source/?sel=100-120&layout=compact").content.decode()
    assert 'data-offset="0"' in near and 'data-sel="100-120"' in near
    laid = client.get(f"/runs/{run.public_id}/steps/2/tab/source/?sel=100-120").content.decode()
    assert 'data-offset="0"' in laid and "t-k-Boundary\">quine<" in laid
    assert "t-k-Boundary\">quine<" in near                        # the start of the program


def test_paused_run_shows_the_editor_and_keeps_a_refused_draft(client, user):
    run = make_run(user, 3, status="paused")
    Run.objects.filter(pk=run.pk).update(pause={
        "point": "before_model", "step": 2, "text": "(quine completion (eval (do ", "reason": "breakpoint",
        "error": None, "effect": None, "draft": "(quine completion (eval (do ] <b>typed</b>",
        "draft_error": {"message": "Unmatched delimiter: ]", "line": 1, "col": 29}})
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    assert 'id="pause-box" data-point="before_model" data-step="2"' in html
    assert 'data-selected="2"' in html                      # opens on the paused step
    assert "Edit refused: Unmatched delimiter: ] at line 1, column 29" in html
    assert "(quine completion (eval (do ] &lt;b&gt;typed&lt;/b&gt;</textarea>" in html
    assert 'action="/runs/%s/edit/"' % run.public_id in html and 'name="step" value="1"' in html
    assert "before model call" in html and 'data-state="paused"' in html


def test_effect_pause_offers_approve_and_reject(client, user):
    run = make_run(user, 2, status="paused")
    Run.objects.filter(pk=run.pk).update(pause={
        "point": "before_effect", "step": 1, "text": None, "reason": "breakpoint", "error": None,
        "effect": {"name": "io/spit", "args": '["out.txt" "<script>x</script>"]'}})
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    assert f'action="/runs/{run.public_id}/approve/"' in html and f'action="/runs/{run.public_id}/reject/"' in html
    assert "io/spit" in html and "<script>x" not in html


def test_interrupted_run_offers_resume(client, user):
    run = make_run(user, 2, status="interrupted")
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    assert 'data-state="interrupted"' in html and "server stopped" in html
    assert f'action="/runs/{run.public_id}/resume-interrupted/"' in html


def _started(run, model_settings: dict) -> None:
    from datetime import datetime, timezone

    from spellide.web.models import RunEvent
    RunEvent.objects.create(run=run, seq=1, type="run_started", created_at=datetime.now(timezone.utc),
                            data={"config": run.config, "model_settings": model_settings, "model": "p"})


def test_setup_view_shows_config_settings_and_the_system_prompt(client, user, run):
    from spellide.spell.api import PROMPT_VERSION, prompt_digest, system_prompt

    run.config = {"prompt": PAYLOADS[0], "model": "profile:local", "depth": 7, "budget": 0.5,
                  "workspace": "/srv/ws/task-1", "breakpoints": {"before_model": True, "effect_kinds": ["io/"]}}
    run.save()
    _started(run, {"provider": "openai", "model": "m-1", "transport": "tool-call", "temperature": 0.2,
                   "prompt_version": PROMPT_VERSION, "prompt_digest": prompt_digest("tool-call")})
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/setup/").content.decode()
    assert raw_payload_free(html) and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "profile:local" in html and "m-1" in html and "tool-call" in html and "$0.50" in html
    assert "before every model call" in html and "effects io/" in html and "task-1" in html
    assert "/srv/ws" not in html                                   # server paths stay on the server
    assert 'id="system-prompt"' in html and 'id="prompt-changed"' not in html
    from django.utils.html import escape
    assert escape(system_prompt("tool-call")[:200]) in html
    # the htmx partial and the share link show the same view
    part = client.get(f"/runs/{run.public_id}/setup/", HTTP_HX_REQUEST="true").content.decode()
    assert part.startswith('<section class="run-view setup-view"')
    run.share_token = "tok-setup-123"
    run.save()
    client.logout()
    assert 'id="system-prompt"' in client.get("/share/tok-setup-123/setup/").content.decode()


def test_setup_view_flags_a_changed_prompt_and_local_models_have_none(client, user, run, other_user):
    _started(run, {"provider": "openai", "transport": "message", "prompt_version": "old",
                   "prompt_digest": "000000000000"})
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/setup/").content.decode()
    assert 'id="prompt-changed"' in html and "000000000000" in html
    plain = make_run(user, 2)
    html = client.get(f"/runs/{plain.public_id}/setup/").content.decode()
    assert 'id="system-prompt"' not in html and "is sent no system prompt" in html
    client.force_login(other_user)
    assert client.get(f"/runs/{run.public_id}/setup/").status_code == 404


def test_live_state_is_the_window_status_and_totals_with_the_seq_they_are_as_new_as(client, user, other_user, run):
    """What a page that missed events loads (views/live.py): rows from its first row (to the
    end when it shows the tail), count, status, totals, pause panel, after a data-sync element."""
    client.force_login(user)
    base = f"/runs/{run.public_id}"
    html = client.get(f"{base}/live/?first=2&tail=1").content.decode()
    assert html.startswith(f'<hx-partial hx-target="#ws-seq" hx-swap="none" data-sync="{run.last_seq}">')
    assert re.findall(r'id="step-row-(\d+)"', html) == ["2", "3", "4", "5"]
    assert 'id="rows-earlier" data-count="2"' in html and "rows-later" not in html
    for target in ("#step-rows", "#step-count", "#run-status", "#run-totals", "#pause-panel"):
        assert f'hx-target="{target}" hx-swap="innerHTML"' in html
    assert 'hx-target="#step-count" hx-swap="innerHTML">6</hx-partial>' in html
    held = client.get(f"{base}/live/?first=1&count=2").content.decode()   # an older window: its size
    assert re.findall(r'id="step-row-(\d+)"', held) == ["1", "2"] and 'id="rows-later" data-count="3"' in held
    fresh = client.get(f"{base}/").content.decode()
    row = re.search(r'<a class="row" id="step-row-3".*?</a>', fresh).group(0)
    assert row in html                                   # the same markup as a fresh page
    client.force_login(other_user)
    assert client.get(f"{base}/live/").status_code == 404


def test_a_row_says_what_its_step_is_doing(client, user):
    """'waiting for the model…' only while the step waits for it; a paused step says so, a
    streaming one shows its text so far, and an ended step with no text says that."""
    run = make_run(user, 4)
    Step.objects.filter(run=run, step_id=0).update(status="paused", completion="")
    Step.objects.filter(run=run, step_id=1).update(status="running", completion="(def partial")
    Step.objects.filter(run=run, step_id=2).update(status="running", completion="")
    Step.objects.filter(run=run, step_id=3).update(status="completed", completion="", continued_by=None)
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/").content.decode()
    sums = dict(re.findall(r'id="step-(\d)-sum">(.*?)</span><span class="r-fx"', html))
    assert "paused" in sums["0"] and "waiting" not in sums["0"]
    assert sums["1"] == "(def partial"
    assert "waiting for the model…" in sums["2"]
    assert "(empty completion)" in sums["3"]
    assert re.search(r'id="step-row-0"[^>]*data-status="paused"', html)
    assert 'data-run-state="finished"' in html


def test_live_state_of_the_tail_has_no_later_rows_when_steps_arrive_meanwhile(client, user, run, monkeypatch):
    """A step stored between reading the tail's rows and counting what follows them is not an
    older window's remainder: the page showing the tail must go on adding rows."""
    import datetime as dt

    real = stepinfo._finish_window

    def with_a_new_step(r, steps, selected):
        Step.objects.create(run=r, step_id=6, parent=5, depth=7, started_at=dt.datetime.now(dt.timezone.utc))
        return real(r, steps, selected)

    monkeypatch.setattr(stepinfo, "_finish_window", with_a_new_step)
    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/live/?first=3&tail=1").content.decode()
    assert re.findall(r'id="step-row-(\d+)"', html) == ["3", "4", "5"] and "rows-later" not in html


def test_a_step_tab_is_one_registry_entry_plus_a_partial(client, user, run, monkeypatch):
    """A new tab appears in the tab bar, is fetched by its URL and on the page, from its entry."""
    from spellide.web import stepinfo

    monkeypatch.setattr(stepinfo, "STEP_TABS", dict(stepinfo.STEP_TABS))

    @stepinfo.step_tab("probe", "Probe <tab>", template="spellide/parts.html#tab_value")
    def _probe(d, nav, step, request):
        d["error"] = f"probed step {step.step_id} of {nav.run.title}"

    client.force_login(user)
    html = client.get(f"/runs/{run.public_id}/steps/3/tab/probe/").content.decode()
    assert "probed step 3 of count &lt;b&gt;down&lt;/b&gt;" in html
    page = client.get(f"/runs/{run.public_id}/steps/3/?tab=probe").content.decode()
    assert 'data-tab="probe"' in page and "Probe &lt;tab&gt;" in page and "probed step 3 of count" in page
