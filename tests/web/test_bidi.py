"""Bidirectional-control characters in run text are shown as visible markers (issue 11
item 6), on every page and fragment, never passed through raw; edited text keeps them."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from spellide.web.bidi import BIDI, mark_html
from spellide.web.fragments import render_event_html
from spellide.web.models import Run

from .pagedata import make_run

pytestmark = pytest.mark.django_db

RLO = "\u202e"
TRICK = f"access{RLO}nimda"          # shows as "accessadmin" reversed: the classic Trojan source
MARKER = '<span class="bidi" title="U+202E">⟨U+202E⟩</span>'
EVERY = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def raw_outside_editors(html: str) -> list[str]:
    """Bidi characters left in ``html`` outside the places a person edits text."""
    html = re.sub(r"<textarea\b.*?</textarea>", "", html, flags=re.S)
    html = re.sub(r"<input\b[^>]*>", "", html)
    html = re.sub(r'<pre class="editor-hl[^"]*"[^>]*>.*?</pre>', "", html, flags=re.S)
    return BIDI.findall(html)


@pytest.fixture
def client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_every_bidi_control_becomes_a_marker_and_the_rest_stays_escaped():
    html = mark_html(f"<p>{EVERY}&lt;b&gt;</p>")
    assert not BIDI.search(html)
    for ch in EVERY:
        assert f'<span class="bidi" title="U+{ord(ch):04X}">⟨U+{ord(ch):04X}⟩</span>' in html
    assert html.endswith("&lt;b&gt;</p>")
    # inside a tag, in <title> and <option> only the marker's text fits; editors keep the text
    assert mark_html(f'<a title="x{RLO}y">z</a>') == '<a title="x⟨U+202E⟩y">z</a>'
    assert mark_html(f"<title>x{RLO}y</title>") == "<title>x⟨U+202E⟩y</title>"
    assert mark_html(f'<option value="a">x{RLO}y</option>') == '<option value="a">x⟨U+202E⟩y</option>'
    assert mark_html(f"<textarea name=t>x{RLO}y</textarea>") == f"<textarea name=t>x{RLO}y</textarea>"
    assert mark_html(f'<input name="title" value="x{RLO}y">') == f'<input name="title" value="x{RLO}y">'
    kept = f'<pre class="editor-hl code"><span class="s">x{RLO}y</span></pre>'
    assert mark_html(kept) == kept
    assert mark_html("plain <b>page</b>") == "plain <b>page</b>"


def test_run_text_with_u202e_is_marked_on_every_page(client, user):
    run = make_run(user, 4, title=f"title {TRICK}", payload=TRICK, error_step=2)
    base = f"/runs/{run.public_id}"
    urls = ["/", f"{base}/", f"{base}/steps/2/", f"{base}/effects/", f"{base}/forks/", f"{base}/setup/"]
    urls += [f"{base}/steps/{s}/tab/{t}/" for s in (1, 2, 3) for t in ("tree", "source", "diff", "effects", "value")]
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200, url
        html = r.content.decode()
        assert raw_outside_editors(html) == [], url
    page = client.get(f"{base}/").content.decode()
    assert f"title access{MARKER}nimda" in page or f"access{MARKER}nimda" in page
    assert f"<title>title access⟨U+202E⟩nimda" in page
    source = client.get(f"{base}/steps/1/tab/source/").content.decode()
    assert MARKER in source
    effects = client.get(f"{base}/effects/").content.decode()
    assert f"access{MARKER}nimda" in effects
    listing = client.get("/").content.decode()
    assert f"title access{MARKER}nimda" in listing


def test_fragments_pushed_over_the_websocket_are_marked(user):
    """A batch carries the state of the steps it touched, read from the database: the run's
    text in it is marked. Streamed pieces of a completion are the one exception: the page
    places them by the offsets of the raw text (they are marked once the row re-renders)."""
    run = make_run(user, 2, payload=TRICK, value=TRICK, error_step=1)
    seen = 0
    for e in ({"seq": 90, "type": "step_finished", "data": {"step": 0}},
              {"seq": 91, "type": "step_finished", "data": {"step": 1, "error": TRICK}},
              {"seq": 92, "type": "run_finished", "data": {"value": TRICK}}):
        html = render_event_html(run, e)
        assert raw_outside_editors(html) == [], e["type"]
        seen += html.count(MARKER)
    assert seen >= 2
    piece = render_event_html(run, {"seq": 93, "type": "completion_delta", "data": {"step": 1, "text": TRICK, "at": 0}})
    assert 'id="stream-sink"' in piece or "#stream-sink" in piece


def test_the_new_run_form_keeps_typed_bidi_text_in_its_fields(client):
    r = client.post("/runs/start/", {"prompt": TRICK, "title": TRICK, "budget": "nan"})
    assert r.status_code == 422
    html = r.content.decode()
    assert f">{TRICK}</textarea>" in html and f'value="{TRICK}"' in html
    assert Run.objects.count() == 0
