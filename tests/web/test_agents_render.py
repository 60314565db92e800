"""The lanes of a multi-agent run as the pages render them: one lane per agent with its status
bars, its steps as links, messages as arrows from the send to the receipt; the same bytes in a
fresh page, in the batch the persister broadcasts and in the live state view."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string

from spellide.spell.api import events as ev
from spellide.web import lanes
from spellide.web.fragments import render_batch
from spellide.web.models import Run
from spellide.web.runner.persist import load_events

from .agent_events import T0, fan_out_events
from .test_agents_persist import persist

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(user):
    r = Run.objects.create(owner=user, title="fan-out")
    persist(r, fan_out_events())
    r.refresh_from_db()
    return r


def lanes_html(run: Run) -> str:
    return render_to_string("spellide/parts.html#lanes", {"lanes": lanes.timeline(run, f"/runs/{run.public_id}")})


def test_one_lane_per_agent_with_its_bars_steps_and_arrows(run):
    t = lanes.timeline(run, "/runs/x")
    assert [(l.handle, l.parent, l.status, l.steps) for l in t.lanes] == [
        (":main", None, "finished", 2), (":a", ":main", "finished", 1), (":b", ":main", "finished", 1)]
    svg = str(t.svg)
    assert svg.count('class="lane ') == 3
    assert len(re.findall(r'class="iv iv-sleeping"', svg)) == 1
    assert len(re.findall(r'class="iv iv-finished"', svg)) == 3
    for sid in (1, 2, 3, 4):
        assert f'href="/runs/x/steps/{sid}/" data-step="{sid}"' in svg
    arrows = re.findall(r'<line class="msg msg-(\w+)( pending)?" data-msg="(\d+)" x1="([\d.]+)%" y1="(\d+)" '
                        r'x2="([\d.]+)%" y2="(\d+)"', svg)
    assert [(k, m) for k, _, m, *_ in arrows] == [("request", "1"), ("request", "1"), ("report", "2"), ("report", "2")]
    assert not any(p for _, p, *_ in arrows)
    spawns = re.findall(r'<line class="msg msg-spawn" data-msg="spawn (:\w)" x1="([\d.]+)%" y1="(\d+)" x2="([\d.]+)%"', svg)
    assert [(h, float(a) == float(b)) for h, a, _, b in spawns] == [(":a", True), (":b", True)]
    # the request goes from :main's lane at the send (0.6 s of 2.9 s) to each worker's lane at
    # its receipt; the report (of both targets) from :a's and :b's lanes back to :main's
    span = 2.9
    (_, _, _, x1, y1, x2, y2), (_, _, _, _, _, x2b, y2b), (_, _, _, rx1, ry1, rx2, ry2), (_, _, _, _, sy1, _, sy2) = arrows
    assert float(x1) == pytest.approx(0.6 / span * 100, abs=0.01)
    assert float(x2) == pytest.approx(0.8 / span * 100, abs=0.01)
    assert float(x2b) == pytest.approx(0.9 / span * 100, abs=0.01)
    assert int(y1) < int(y2) < int(y2b)                # :main above :a above :b
    assert (int(ry1), int(sy1)) == (int(y2), int(y2b)) and int(ry2) == int(sy2) == int(y1)
    assert float(rx1) == pytest.approx(2.0 / span * 100, abs=0.01) and float(rx2) == pytest.approx(2.2 / span * 100, abs=0.01)


def test_a_message_not_received_yet_is_a_pending_stub(user):
    r = Run.objects.create(owner=user, title="pending")
    items = [x for x in fan_out_events(finish=False)
             if not (x[0] == ev.RECEIPT and x[1]["agent"] == ":b")]
    persist(r, items)
    svg = str(lanes.timeline(r, "/runs/x").svg)
    assert len(re.findall(r'class="msg msg-request pending"', svg)) == 1
    assert "(not received yet)" in svg


def test_run_text_in_the_lanes_is_escaped(user):
    r = Run.objects.create(owner=user, title="xss")
    items = fan_out_events()
    for _, d, _ in items:
        if d.get("kind") == "report":
            d["body"] = "<script>alert(1)</script>"
        if d.get("agent") == ":a":
            d["agent"] = ":<img src=x onerror=alert(2)>"
    persist(r, items)
    html = lanes_html(r)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_page_the_broadcast_and_the_live_state_show_the_same_lanes(client, user, run):
    expected = lanes_html(run)
    assert 'id="lanes-panel"' in expected
    client.force_login(user)
    page = client.get(f"/runs/{run.public_id}/").content.decode()
    assert f'<div id="agent-lanes">{expected}</div>' in page
    assert 'data-multi-agent="1"' in page
    live = client.get(f"/runs/{run.public_id}/live/").content.decode()
    assert f'<hx-partial hx-target="#agent-lanes" hx-swap="innerHTML">{expected}</hx-partial>' in live
    events = load_events(run)
    batch = "".join(html for _, html in render_batch(run, events[-3:]))
    seq = events[-1]["seq"]
    assert f'<hx-partial hx-target="#agent-lanes" hx-swap="innerHTML" data-seq="{seq}">{expected}</hx-partial>' in batch


def test_step_rows_say_their_agent(client, user, run):
    client.force_login(user)
    page = client.get(f"/runs/{run.public_id}/").content.decode()
    rows = dict(re.findall(r'id="step-row-(\d+)"[^>]* data-agent="([^"]+)"', page))
    assert rows == {"1": ":main", "2": ":a", "3": ":b", "4": ":main"}
    assert re.search(r'<span class="r-agent ag-1" title="agent :a, generation 1">:a</span>', page)
    effects = client.get(f"/runs/{run.public_id}/effects/").content.decode()   # another view: no lanes
    assert 'data-multi-agent="1"' in effects and 'id="lanes-panel"' not in effects


def test_the_run_list_says_how_many_agents_a_run_had(client, user, run):
    client.force_login(user)
    html = client.get("/").content.decode()
    row = html[html.index(f'id="run-{run.public_id}"'):]
    row = row[:row.index("</tr>")]
    assert '<span class="chip agents"' in row and ">3 agents</span>" in row


def test_a_single_agent_run_has_no_lanes(client, user):
    r = Run.objects.create(owner=user, title="solo")
    persist(r, [(ev.RUN_STARTED, {"config": {}}, T0),
                (ev.STEP_STARTED, {"step": 1, "parent": None, "depth": 1, "prefix": "(quine", "model": "m"}, T0 + 0.1),
                (ev.STEP_FINISHED, {"step": 1, "value": "1", "error": None, "continued_by": None}, T0 + 0.2)])
    assert lanes.timeline(r, "/runs/x") is None
    client.force_login(user)
    page = client.get(f"/runs/{r.public_id}/").content.decode()
    assert 'id="lanes-panel"' not in page and 'data-multi-agent="0"' in page
    listed = client.get("/").content.decode()
    assert 'class="chip agents"' not in listed
    batch = "".join(html for _, html in render_batch(r, load_events(r)))
    assert "#agent-lanes" not in batch


def test_the_time_axis_ends_at_the_latest_event_not_the_clock(run):
    """Two renderings of the same state are the same bytes (what live == fresh rests on)."""
    first = lanes_html(run)
    assert lanes_html(run) == first
    assert "2.9 s" in first        # the axis' last tick: the run's span


def test_a_steps_detail_says_its_agent_and_its_messages(client, user, run):
    client.force_login(user)
    four = client.get(f"/runs/{run.public_id}/steps/4/").content.decode()
    agent = re.search(r'id="detail-4-agent">(.*?)</div>', four).group(1)
    assert ":main" in agent and "gen 1" in agent
    received = re.sub(r"<[^>]+>", "", re.search(r'id="detail-4-received">(.*?)</div>', four).group(1))
    assert "msg-1 ← [:a :b] report #1" in received
    one = client.get(f"/runs/{run.public_id}/steps/1/").content.decode()
    sent = re.sub(r"<[^>]+>", "", re.search(r'id="detail-1-sent">(.*?)</div>', one).group(1))
    assert "request #1 → :a, :b" in sent
    two = client.get(f"/runs/{run.public_id}/steps/2/").content.decode()
    assert 'id="detail-2-sent"' not in two and "msg-1 ← :main request #1" in re.sub(r"<[^>]+>", "", two)


def test_a_batch_of_a_multi_agent_run_renders_in_a_bounded_number_of_queries(user, django_assert_max_num_queries):
    """The lanes come whole with every batch: a fixed number of queries however many agents,
    steps and messages (what a single-agent run's batch costs is in test_runner: none more)."""
    r = Run.objects.create(owner=user, title="many")
    items = fan_out_events(finish=False)
    extra = []
    for i in range(40):      # 40 more agents, each sent a message
        extra.append((ev.AGENT, {"agent": f":x{i}", "parent": ":main", "status": "running", "generation": 1,
                                 "step": 1}, T0 + 2.3))
        extra.append((ev.MESSAGE, {"id": 100 + i, "kind": "send", "sender": ":main", "targets": [f":x{i}"],
                                   "body": str(i), "step": 4}, T0 + 2.4))
    persist(r, items + extra)
    r.refresh_from_db()
    events = load_events(r)
    with django_assert_max_num_queries(12):
        out = render_batch(r, events[-5:])
    assert out[-1][1].count('class="lane-label ag-') == 43
