"""The new-run form (issue 10 rough edge 2, issue 11 item 4): every field is checked on the
server, a bad value answers 4xx with the form again (the error next to its field, everything
typed kept), an init program that does not read is refused before a run exists, and a form over
the upload limit gets a page in the app's style."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils.html import escape

from spellide.web.models import Run

from .conftest import finish
from .pagedata import make_run

pytestmark = pytest.mark.django_db

GOOD = {"title": "my careful run", "prompt": "Count the <b>words</b>", "model": "hello", "depth": "3",
        "budget": "0.5", "workspace": "none", "breakpoints_set": "1", "bp_on_error": "on",
        "effect_kinds": "io/spit"}


@pytest.fixture
def client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def field_label(html: str, name: str) -> str:
    """The ``<label>`` (or block) of the form that holds field ``name``."""
    m = re.search(r'<label>(?:(?!</label>).)*name="%s"(?:(?!</label>).)*</label>' % re.escape(name), html, re.S)
    assert m, f"no label for {name}"
    return m.group(0)


@pytest.mark.parametrize("field,value,message", [
    ("budget", "nan", "budget must be a finite number of dollars"),
    ("budget", "inf", "budget must be a finite number of dollars"),
    ("budget", "1e309", "budget must be a finite number of dollars"),
    ("budget", "-5", "budget must not be negative"),
    ("budget", "lots", "budget must be a finite number of dollars"),
    ("budget", "1e9", "budget must be at most"),
    ("depth", "0", "depth must be at least 1"),
    ("depth", "1001", "depth must be at most 1000"),
    ("depth", "2.5", "depth must be a whole number"),
    ("title", "t" * 201, "a title has at most 200 characters (this one has 201)"),
    ("model", "profile:no-such-profile", "unknown model"),
    ("model", "scripted:/etc/passwd", "unknown demo model"),
    ("workspace", "../../etc", "unknown workspace seed"),
    ("effect_kinds", "io, <script>", "is not an effect kind"),
])
def test_a_bad_field_is_refused_next_to_the_field_and_the_input_is_kept(client, field, value, message):
    data = dict(GOOD, **{field: value})
    r = client.post("/runs/start/", data)
    assert r.status_code == 422, r.content[:500]
    html = r.content.decode()
    assert 'id="new-run-form"' in html and "The run was not started" in html
    label = field_label(html, field)
    assert 'class="field-error"' in label and message in label, label
    assert 'aria-invalid="true"' in label
    # everything typed is still there (escaped), the bad value included
    assert 'value="my careful run"' in html or field == "title"
    assert ">Count the &lt;b&gt;words&lt;/b&gt;</textarea>" in html
    assert re.search(r'name="bp_on_error" checked', html)
    if field in ("model", "workspace"):   # a value the menu does not offer: nothing selected
        assert "selected" not in label
    else:
        assert f'value="{escape(value)}"' in label
    if field != "workspace":
        assert '<option value="none" selected>' in html
    assert Run.objects.count() == 0


def test_htmx_gets_the_form_alone_and_json_gets_the_errors(client):
    r = client.post("/runs/start/", dict(GOOD, budget="nan"), headers={"HX-Request": "true"})
    assert r.status_code == 422
    html = r.content.decode()
    assert html.lstrip().startswith('<form method="post" action="/runs/start/"') and "<html" not in html
    assert "budget must be a finite number" in field_label(html, "budget")
    r = client.post("/runs/start/", dict(GOOD, depth="-1", budget="inf"), headers={"Accept": "application/json"})
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False and set(body["errors"]) == {"depth", "budget"}
    assert Run.objects.count() == 0


@pytest.mark.parametrize("program,message", [
    ('(def broken "unterminated', "EOF while reading string started at 1:13 at line 1, column 26"),
    ("(do\n  (+ 1 2)", "EOF while reading list started at 1:1 at line 2, column 10"),
    ("(do ]", "Unmatched delimiter: ] at line 1, column 5"),
    ("(+ 1 2) (+ 3 4)", "expected exactly one top-level form, got 2"),
])
def test_an_init_program_that_does_not_read_is_refused_before_a_run_exists(client, program, message):
    r = client.post("/runs/start/", {"program": program, "model": "hello"})
    assert r.status_code == 422
    html = r.content.decode()
    assert '<details class="program-box" open>' in html
    box = html[html.index('<details class="program-box"'):html.index("</details>", html.index('<details class="program-box"'))]
    assert "the program does not read: " + message in box, box
    assert "data-line=" in box and "data-col=" in box
    # the program comes back in its editor exactly as typed (escaped)
    assert ">" + program.replace('"', "&quot;") + "</textarea>" in box
    assert Run.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_valid_form_starts_the_run_it_describes(client, user):
    r = client.post("/runs/start/", dict(GOOD, prompt="Say hi"))
    assert r.status_code == 302
    run = finish(Run.objects.get())
    assert run.status == "finished" and run.value == '"hello world"', run.error
    assert run.title == "my careful run" and run.config["depth"] == 3 and run.config["budget"] == 0.5
    assert run.config["breakpoints"] == {"before_model": False, "after_completion": False, "on_error": True,
                                         "effect_kinds": ["io/spit"]}
    assert run.config["workspace"] is None and run.config["prompt"] == "Say hi"


def test_the_model_menu_has_one_replay_entry_and_a_searchable_list(client, user):
    for i in range(25):
        make_run(user, 1, title=f"recorded {i}", status="finished")
    make_run(user, 1, title="still going", status="running")
    html = client.get("/").content.decode()
    select = html[html.index('<select name="model"'):html.index("</select>", html.index('<select name="model"'))]
    assert select.count('value="replay') == 1 and 'value="replay"' in select
    assert "recorded 3" not in select
    picker = html[html.index('id="replay-choices"'):]
    assert picker.count('name="replay_of"') == 12 and "13 more" in picker
    assert "still going" not in picker
    r = client.get("/runs/replayable/", {"replay_q": "recorded 2"})
    titles = re.findall(r"> (recorded \d+) <", r.content.decode())
    assert sorted(titles) == ["recorded 2", "recorded 20", "recorded 21", "recorded 22", "recorded 23",
                              "recorded 24"]
    r = client.get("/runs/replayable/", {"replay_q": "nothing like it"})
    assert "No finished run matches" in r.content.decode()


def test_replay_needs_a_recorded_run_of_ones_own(client, user, other_user):
    active = make_run(user, 1, title="active", status="paused")
    theirs = make_run(other_user, 1, title="theirs", status="finished")
    for data, message in [({}, "choose the recorded run to replay"),
                          ({"replay_of": str(active.public_id)}, "that run is paused"),
                          ({"replay_of": str(theirs.public_id)}, "unknown recorded run"),
                          ({"replay_of": "not-a-uuid"}, "unknown recorded run")]:
        r = client.post("/runs/start/", dict(GOOD, model="replay", **data))
        assert r.status_code == 422
        html = r.content.decode()
        block = html[html.index('<div class="replay-pick">'):]
        assert message in block[:block.index('<div class="row2">')], (data, block[:2000])
    assert Run.objects.filter(title="my careful run").count() == 0


def test_a_form_over_the_upload_limit_gets_a_styled_page(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    r = client.post("/runs/start/", {"prompt": "x" * 20_000, "model": "hello"})
    assert r.status_code == 413
    html = r.content.decode()
    assert "Bad Request (400)" not in html
    assert "<h1>Too large to send</h1>" in html and "10 KB per request" in html
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in html and 'class="topbar"' in html and "ide.css" in html
    r = client.post("/runs/start/", {"prompt": "x" * 20_000}, headers={"HX-Request": "true"})
    assert r.status_code == 413 and b'class="control-result refused"' in r.content
    assert Run.objects.count() == 0


def test_the_editor_preview_reads_a_new_runs_program_as_the_run_will(client):
    """``mode=init`` (the new-run form's editor): an unclosed form is an error there, as when
    the run starts; a step's program (``mode=program``) may end early."""
    r = client.post("/highlight/", {"text": '(do (def broken "unterminated', "mode": "init"}).json()
    assert r["ok"] is False and r["message"].startswith("EOF while reading string") and r["line"] == 1
    assert client.post("/highlight/", {"text": "(do (+ 1 2)", "mode": "program"}).json()["ok"] is True
    assert client.post("/highlight/", {"text": "(do (+ 1 2))", "mode": "init"}).json()["ok"] is True
