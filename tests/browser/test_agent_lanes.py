"""Multi-agent runs in real Chromium: a demo's lanes and arrows stream in live while the run
executes, nothing on the page moves while they do, a step's mark on a lane selects the step,
a lane's label filters the step list by agent, and the lanes a page watched live are exactly
the lanes a fresh load of the page shows.

The demos run for real (the core's agents runtime with per-agent scripted models, keeping
their model latency so the run streams for a few seconds)."""

from __future__ import annotations

import re

import pytest

from tests.web.agent_runtime import demo_params

from .test_live_fresh import TERMINAL, post, server_status, settled

pytestmark = pytest.mark.browser

AGENT_DEMOS = {   # demo -> (its agents in lane order, the run's value)
    "agents-fan-out": ([":main", ":w1", ":w2", ":w3"],
                       '["Boats crowd a small harbour." "A storm wrecks the pier." "Divers save the crew."]'),
    "agents-telephone": ([":main", ":p1", ":p2", ":p3"], '"in: the cat sat on the mat / out: the bat sat on a hat"'),
    "agents-auction": ([":main", ":alice", ":bob", ":carol"], "{:winner :alice :price 160}"),
    "agents-negotiate": ([":main", ":seller"], "[:deal 135]"),
    "agents-plet": ([":main", ":pricer", ":stock"], "{:lamps 5 :total 200}"),
}

# The lanes as the page shows them: every lane, bar, step mark and arrow, with its place.
LANES = """() => {
  const p = document.querySelector('#lanes-panel');
  if (!p) return null;
  const attrs = (el, names) => Object.fromEntries(names.map((n) => [n, el.getAttribute(n)]));
  return {
    labels: [...p.querySelectorAll('.lane-label')].map((b) => b.dataset.agent + ' ' + b.querySelector('.st').textContent),
    bars: [...p.querySelectorAll('rect.iv')].map((r) => r.getAttribute('class') + ' ' + JSON.stringify(attrs(r, ['x', 'y', 'width']))),
    marks: [...p.querySelectorAll('a.lane-step')].map((a) => a.dataset.step + ' ' + a.querySelector('rect').getAttribute('class')
      + ' ' + JSON.stringify(attrs(a.querySelector('rect'), ['x', 'y', 'width']))),
    arrows: [...p.querySelectorAll('line.msg')].map((l) => l.getAttribute('class') + ' ' + l.dataset.msg + ' '
      + JSON.stringify(attrs(l, ['x1', 'y1', 'x2', 'y2']))),
    head: p.querySelector('.lanes-head').textContent.replace(/\\s+/g, ' ').trim(),
    html: document.querySelector('#agent-lanes').innerHTML,
  };
}"""

# Where the page's regions are, sampled every frame from when the lanes appear and a step's
# detail is shown (before that the detail pane holds a "no step selected" note, whose margin
# is not the lanes' business): nothing may move.
WATCH_LAYOUT = """() => {
  window.__layout = new Set();
  const sample = () => {
    const p = document.querySelector('#lanes-panel'), d = document.querySelector('#step-detail');
    if (p && d && document.querySelector('#detail')) {
      const a = p.getBoundingClientRect(), b = d.getBoundingClientRect();
      window.__layout.add(JSON.stringify([a.top, a.height, a.width, b.top]));
    }
    if (!window.__stopLayout) requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
}"""


def start_demo(page, server, demo: str) -> str:
    url = post(page.context, server, "/runs/start/", {"demo": demo})
    assert re.search(r"/runs/[0-9a-f-]{36}/$", url), url
    page.goto(url)
    return url


def lanes(page) -> dict:
    return page.evaluate(LANES)


def test_a_fan_out_streams_its_lanes_and_arrows_live_without_moving_the_page(page, server):
    start_demo(page, server, "agents-fan-out")
    page.wait_for_selector("#lanes-panel")
    page.evaluate(WATCH_LAYOUT)
    assert server_status(page.context, page.url)["status"] not in TERMINAL, "the run ended before its lanes streamed"
    seen_running = page.evaluate("() => document.querySelectorAll('#lanes-panel rect.iv-running').length")
    assert seen_running >= 1
    st = settled(page, page.context)
    page.evaluate("window.__stopLayout = true")
    assert st["status"] == "finished"
    got = lanes(page)
    assert got["labels"] == [":main finished", ":w1 finished", ":w2 finished", ":w3 finished"]
    assert "4 agents" in got["head"]
    # the spawn-ask edge: a spawn arrow to each worker, and the edge's one report drawn from
    # each worker that filled it back to :main
    kinds = sorted(a.split(" ")[1] for a in got["arrows"])
    assert kinds == ["msg-report"] * 3 + ["msg-spawn"] * 3, kinds
    assert not [a for a in got["arrows"] if "pending" in a]
    rows = page.evaluate("() => [...document.querySelectorAll('#step-rows > .row')].map((r) => r.dataset.step + r.dataset.agent)")
    assert sorted(m.split(" ")[0] for m in got["marks"]) == sorted(r.split(":")[0] for r in rows)
    assert {r.split(":", 1)[1] for r in rows} == {"main", "w1", "w2", "w3"}
    assert page.evaluate("() => getComputedStyle(document.querySelector('.r-agent')).display") != "none"
    layout = page.evaluate("() => [...window.__layout]")
    assert len(layout) == 1, f"the lanes or the detail moved while the run streamed: {layout}"
    assert not page.errors, page.errors


def test_a_step_mark_selects_the_step_and_a_label_filters_the_steps(page, server):
    start_demo(page, server, "agents-auction")
    settled(page, page.context)
    page.evaluate("window.__samePage = true")
    marks = page.evaluate("() => [...document.querySelectorAll('#lanes-panel a.lane-step')].map((a) => a.dataset.step)")
    bob = page.evaluate("() => document.querySelector('#step-rows > .row[data-agent=\":bob\"]').dataset.step")
    assert bob in marks
    page.click(f'#lanes-panel a.lane-step[data-step="{bob}"]')
    page.wait_for_function("(s) => document.querySelector('#detail') && document.querySelector('#detail').dataset.step === s", arg=bob)
    assert page.evaluate("window.__samePage") is True           # selected in the page, not a new load
    assert page.url.endswith(f"/steps/{bob}/")
    assert page.evaluate("() => document.querySelector('#ide').dataset.selected") == bob
    assert page.evaluate(f"() => document.querySelector('#lanes-panel a.lane-step[data-step=\"{bob}\"]').classList.contains('sel')")
    assert page.evaluate(f"() => document.querySelector('#step-row-{bob}').classList.contains('sel')")
    assert ":bob" in page.inner_text(f"#detail-{bob}-agent")
    visible = "() => [...document.querySelectorAll('#step-rows > .row')].filter((r) => !r.hidden).map((r) => r.dataset.agent)"
    everyone = page.evaluate(visible)
    page.click('#lanes-panel .lane-label[data-agent=":alice"]')
    assert set(page.evaluate(visible)) == {":alice"} and len(page.evaluate(visible)) == 2   # two lifecycles
    assert page.get_attribute('#lanes-panel .lane-label[data-agent=":alice"]', "aria-pressed") == "true"
    page.click('#lanes-panel .lane-label[data-agent=":alice"]')
    assert page.evaluate(visible) == everyone
    assert not page.errors, page.errors


def assert_lanes_equal_a_fresh_load(page) -> dict:
    live = lanes(page)
    fresh_page = page.context.new_page()
    try:
        fresh_page.goto(page.url)
        fresh_page.wait_for_selector("#lanes-panel")
        fresh_page.wait_for_function("() => document.querySelector('#ide').dataset.settled === '1'")
        fresh = lanes(fresh_page)
    finally:
        fresh_page.close()
    for key in ("labels", "bars", "marks", "arrows", "head"):
        assert live[key] == fresh[key], f"{key}: live {live[key]} != fresh {fresh[key]}"
    assert live["html"] == fresh["html"]
    return live


def test_lanes_after_a_dropped_socket_and_lost_frames_equal_a_fresh_load(server):
    """The page reconnects and reloads its state (the live state view sends the lanes too),
    then notices a gap and reloads again; and when every frame after the middle of the run is
    lost and the socket drops after the run ended, the reconnect alone must bring the lanes to
    their end: its lanes end as a fresh load's."""
    from .conftest import open_page
    from .test_live_fresh import SOCKET_HOOKS

    with open_page(server) as page:
        page.context.add_init_script(SOCKET_HOOKS)
        start_demo(page, server, "agents-auction")
        page.wait_for_selector("#lanes-panel")
        page.evaluate("window.__dropSocket()")
        page.wait_for_function("() => window.__sockets.length >= 2", timeout=15_000)
        page.evaluate("window.__loseFrames = 2")
        page.wait_for_function("() => window.__loseFrames === 0", timeout=15_000)
        page.evaluate("window.__loseFrames = 100000")          # nothing more arrives...
        while server_status(page.context, page.url)["status"] not in TERMINAL:
            page.wait_for_timeout(100)
        stale = lanes(page)
        page.evaluate("window.__loseFrames = 0; window.__dropSocket()")   # ...until it reconnects
        st = settled(page, page.context)
        assert lanes(page)["html"] != stale["html"]
        assert (st["status"], st["value"]) == ("finished", AGENT_DEMOS["agents-auction"][1])
        got = assert_lanes_equal_a_fresh_load(page)
        assert len(got["labels"]) == 4
        assert not page.errors, page.errors


@pytest.mark.parametrize("demo", demo_params(AGENT_DEMOS))
def test_lanes_watched_live_equal_a_fresh_load(page, server, demo):
    handles, value = AGENT_DEMOS[demo]
    start_demo(page, server, demo)
    st = settled(page, page.context)
    assert st["status"] == "finished", st
    assert st["value"] == value
    live = assert_lanes_equal_a_fresh_load(page)
    assert [l.split(" ")[0] for l in live["labels"]] == handles
    assert not page.errors, page.errors


def many_demo(n: int) -> dict:
    """:main spawns ``n`` workers with one spawn-ask edge; their answers take 0.4-2 s."""
    specs = " ".join(f'["Task {i}." :w{i}]' for i in range(1, n + 1))
    script = {"main": [{"text": f"'(agents/!spawn-ask [{specs}])", "latency": 0.1},
                       {"text": "(count (:body msg-1))", "latency": 0}]}
    for i in range(1, n + 1):
        script[f"w{i}"] = [{"text": str(i), "latency": 0.4 + 1.6 * i / n}]
    return {"order": 95, "title": f"many{n}", "prompt": f"Start {n} workers.", "completions": script}


def app_with_demo(tmp_path_factory, name: str, demo: dict):
    """A server whose demos are the bundled ones plus ``demo`` (as ``name``); yields it."""
    import json
    import shutil
    from pathlib import Path

    from .server import AppServer, ROOT

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed (./dev test installs it)")
    work = tmp_path_factory.mktemp(name)
    demos = work / "demos"
    shutil.copytree(ROOT / "spellide" / "demos", demos)
    (demos / f"{name}.json").write_text(json.dumps(demo), encoding="utf-8")
    srv = AppServer(work, extra_env={"SPELLIDE_DEMOS_DIR": str(demos)}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def many_app(tmp_path_factory):
    yield from app_with_demo(tmp_path_factory, "many12", many_demo(12))


def test_many_lanes_scroll_and_the_place_is_kept_while_they_stream(many_app):
    from .conftest import open_page

    with open_page(many_app) as page:
        start_demo(page, many_app, "many12")
        page.wait_for_function("() => document.querySelectorAll('#lanes-panel .lane-label').length === 13")
        box = page.evaluate("() => { const s = document.querySelector('.lanes-scroll');"
                            " return [s.scrollHeight, s.clientHeight]; }")
        assert box[0] > box[1], f"13 lanes fit the fixed panel: {box}"
        page.evaluate("() => { const s = document.querySelector('.lanes-scroll'); s.scrollTop = s.scrollHeight;"
                      " window.__oldSvg = document.querySelector('.lane-svg'); window.__top = s.scrollTop; }")
        # the lanes are rendered anew by the next batches; the reader stays at the bottom
        page.wait_for_function("() => document.querySelector('.lane-svg') !== window.__oldSvg")
        assert server_status(page.context, page.url)["status"] not in TERMINAL
        assert page.evaluate("() => document.querySelector('.lanes-scroll').scrollTop") == page.evaluate("window.__top") > 0
        st = settled(page, page.context)
        assert (st["status"], st["value"]) == ("finished", "12")
        assert page.evaluate("() => document.querySelector('.lanes-scroll').scrollTop") == page.evaluate("window.__top")
        assert not page.errors, page.errors
