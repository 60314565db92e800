"""Pausing one agent of a multi-agent run in real Chromium: the pause control on agent :w's
lane label stops :w alone (the pause panel names it; the other agents finish meanwhile), the
person edits :w's program in the pause panel and resumes, and the run finishes with the edit
in :w's step, while the page equals a fresh load of it (its rows, detail, status and lanes).

The demo is the fan-out's shape with a worker :w whose model call takes 3 s, so that a person
(the test) can pause it in time; it is served from a demos directory of this module's own."""

from __future__ import annotations

import re

import pytest

from .test_agent_lanes import app_with_demo, assert_lanes_equal_a_fresh_load
from .test_live_fresh import TERMINAL, assert_live_equals_fresh, post, server_status, settled

pytestmark = pytest.mark.browser

SLOW_W = 3.0


def pause_demo() -> dict:
    """:main asks :w and :v (one spawn-ask edge) and returns their answers."""
    return {"order": 96, "title": "pause one agent",
            "prompt": "Ask two workers and collect their answers.",
            "completions": {
                "main": [{"text": "'(agents/!spawn-ask [[\"Name a colour.\" :w] [\"Name a fruit.\" :v]])",
                          "latency": 0.1},
                         {"text": "(mapv :body (:body msg-1))", "latency": 0}],
                "w": [{"text": "\"blue\"", "latency": SLOW_W}],
                "v": [{"text": "\"pear\"", "latency": 0.3}]}}


@pytest.fixture(scope="module")
def pause_app(tmp_path_factory):
    yield from app_with_demo(tmp_path_factory, "pause-one", pause_demo())


def test_pause_one_agent_edit_its_program_resume_and_the_page_equals_a_fresh_load(pause_app):
    from .conftest import open_page

    with open_page(pause_app) as page:
        url = post(page.context, pause_app, "/runs/start/", {"demo": "pause-one"})
        assert re.search(r"/runs/[0-9a-f-]{36}/$", url), url
        page.goto(url)
        button = '#lanes-panel .lane-pause-btn[data-agent=":w"]'
        page.wait_for_selector(button, timeout=15_000)
        assert server_status(page.context, page.url)["status"] not in TERMINAL
        page.click(button)
        # :w is in its model call: it stops after the completion, with its program to edit
        page.wait_for_selector('#pause-box[data-point="after_completion"]', timeout=15_000)
        assert page.inner_text("#pause-box .pause-agent b") == ":w"
        assert "the other agents go on" in page.inner_text("#pause-box .pause-head")
        # :v went on and finished while :w is paused
        page.wait_for_function("() => [...document.querySelectorAll('#step-rows > .row[data-agent=\":v\"]')]"
                               ".some((r) => r.dataset.status === 'completed')", timeout=15_000)
        assert server_status(page.context, page.url)["status"] == "paused"
        assert page.evaluate("() => document.querySelector('.lane-label[data-agent=\":w\"] .st').textContent") == "paused"
        program = page.input_value("#edit-text")
        assert '"blue"' in program
        page.fill("#edit-text", program.replace('"blue"', '"deep blue"'))
        page.click('#edit-form button[value="continue"]')
        st = settled(page, page.context)
        assert st["status"] == "finished", st
        assert st["value"] == '["deep blue" "pear"]'
        w_step = page.evaluate("() => document.querySelector('#step-rows > .row[data-agent=\":w\"]').dataset.step")
        page.click(f"#step-row-{w_step}")
        page.wait_for_function("(s) => document.querySelector('#detail') && document.querySelector('#detail').dataset.step === s",
                               arg=w_step)
        settled(page, page.context)
        assert "deep blue" in page.inner_text("#step-detail")
        assert_live_equals_fresh(page.context, page)
        assert_lanes_equal_a_fresh_load(page)
        assert not page.errors, page.errors
