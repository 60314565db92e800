"""The IDE in real Chromium: live steps, pause/edit/resume, fork with cache hits, hostile
completions, keyboard navigation."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser


def start_demo(page, server, name: str) -> str:
    page.goto(server.url + "/")
    page.locator(f"form:has(input[name=demo][value='{name}']) button").click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}/$"))
    page.wait_for_selector("#run-state")
    # the run's own URL: following the run may already have moved the address to a step
    return re.match(r".*/runs/[0-9a-f-]{36}/", page.url).group(0)


def start_run(page, server, *, prompt: str, model: str, before_model: bool = False) -> str:
    page.goto(server.url + "/")
    page.fill("textarea[name=prompt]", prompt)
    page.select_option("select[name=model]", model)
    if before_model:
        page.check("input[name=bp_before_model]")
    page.click("#new-run-form button.primary")
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}/$"))
    page.wait_for_selector("#run-state")
    # the run's own URL: following the run may already have moved the address to a step
    return re.match(r".*/runs/[0-9a-f-]{36}/", page.url).group(0)


def detail_shown(page, step: int, inside: str = "") -> None:
    """Wait until the detail of ``step`` is on the page and no newer detail load is on its way
    (a detail already shown for that step could otherwise be replaced under the test)."""
    page.wait_for_selector(f"#step-detail:not([aria-busy='true']) #detail[data-step='{step}'] {inside}".strip())


def state(page) -> str:
    return page.get_attribute("#run-state", "data-state")


def wait_state(page, *states: str, timeout: float = 20.0) -> str:
    page.wait_for_function(
        "states => states.includes(document.querySelector('#run-state')?.dataset.state)",
        arg=list(states), timeout=timeout * 1000)
    return state(page)


def rows(page) -> int:
    return page.locator("#step-rows > .row").count()


def controls_shown(page) -> list[str]:
    """The top bar's run controls (and the hold-feed button) a person can see now."""
    return page.eval_on_selector_all(
        "#run-controls .ctl button, #hold-feed",
        "els => els.filter(e => e.checkVisibility()).map(e => e.textContent.trim())")


def test_demo_run_streams_steps_live(page, server):
    start_demo(page, server, "countdown")
    page.evaluate("window.__noReload = 1")
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen.append((rows(page), state(page)))
        if seen[-1][1] == "finished":
            break
        page.wait_for_timeout(100)
    assert seen[-1] == (11, "finished") or (rows(page) == 11 and wait_state(page, "finished"))
    counts_while_running = {n for n, s in seen if s == "running"}
    assert len(counts_while_running) >= 3, seen          # rows arrived one by one, not at the end
    assert page.evaluate("window.__noReload") == 1       # no page reload happened
    # the newest step was followed and its detail filled in without a reload
    page.wait_for_function("() => document.querySelector('#ide').dataset.selected === '10'")
    detail_shown(page, 10)
    assert page.locator("#step-10-st.st-completed").count() == 1
    assert "value [10 1]" in page.inner_text("#run-status")
    # every step row shows its effects (one model call each)
    assert page.locator("#step-rows .fx-live").count() == 11
    assert not page.errors


def test_pause_edit_resume_and_the_diff_shows_the_human_edit(page, server):
    start_run(page, server, prompt="Count down from 10, one number per turn.", model="demo:countdown",
              before_model=True)
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='0']")
    assert wait_state(page, "paused") == "paused"
    assert "before model call" in page.inner_text("#run-status")
    # the top bar offers what the state allows, following it live
    page.wait_for_function("() => document.querySelector('#ide').dataset.state === 'paused'")
    assert controls_shown(page) == ["Resume", "Step", "Stop", "Hold feed"]
    page.click("#pause-box form[action$='/resume/'] button")              # step 0 unchanged
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='1']")
    editor = page.locator("#edit-text")
    prefix = editor.input_value()
    assert prefix.startswith("(quine completion") and "(def n10 10)" in prefix
    editor.fill(prefix + "(def human-edit 42) ")
    page.wait_for_selector(".editor-status.ok")                             # live parse check
    page.click("#edit-form button[value=continue]")
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='2']")
    # an edit that does not read is refused with its position, and the text stays
    bad = page.locator("#edit-text").input_value() + "(def broken ]"
    page.locator("#edit-text").fill(bad)
    page.wait_for_selector(".editor-status.refused")
    page.click("#edit-form button[value=continue]")
    page.wait_for_selector("#editor-status .control-result.refused")
    refusal = page.inner_text("#editor-status")
    assert re.search(r"line \d+, column \d+", refusal), refusal
    assert page.locator("#edit-text").input_value() == bad
    assert state(page) == "paused"
    page.click("#pause-box form[action$='/stop/'] button")
    wait_state(page, "stopped", "failed")
    page.wait_for_function("() => ['stopped', 'failed'].includes(document.querySelector('#ide').dataset.state)")
    assert controls_shown(page) == []
    # the diff of step 1 (whose prefix was edited) names the human edit and its author
    page.click("#step-row-1")
    detail_shown(page, 1)
    page.keyboard.press("3")
    detail_shown(page, 1, ".tab-pane[data-tab='diff']")
    human = page.locator(".drow.dk-human")
    assert human.count() == 1
    assert "(def human-edit 42)" in human.inner_text() and "tester" in human.inner_text()
    assert "Edited by tester before model call" in page.inner_text(".human-edit")
    page.keyboard.press("2")
    page.wait_for_selector(".src-code .prov-human")
    assert "human-edit" in page.inner_text(".src-code .prov-human")
    assert not page.errors


def test_fork_from_a_past_step_replays_from_the_cache(page, server):
    run_url = start_demo(page, server, "countdown")
    wait_state(page, "finished")
    page.goto(run_url + "steps/5/")
    page.click(".fork-box > summary")
    page.click(".fork-form button.primary")
    page.wait_for_url(lambda u: u.rstrip("/") != run_url.rstrip("/") and "/runs/" in u)
    fork_url = page.url
    assert fork_url.split("/runs/")[1][:36] != run_url.split("/runs/")[1][:36]
    wait_state(page, "finished")
    page.reload()
    assert "Forked from" in page.inner_text(".banner")
    hits = page.locator("#step-rows .fx-hit").count()
    assert hits >= 5                                   # replayed steps were served by the cache
    assert page.locator("#step-row-0 .fx-hit").count() == 1
    page.goto(fork_url.split("/steps/")[0].rstrip("/") + "/effects/")
    reused = int(page.inner_text(".card:has(span:text('reused (hits)')) b"))
    assert reused == hits
    # the fork tree shows both runs, from the fork and from the parent; the parent is untouched
    page.goto(fork_url.split("/steps/")[0].rstrip("/") + "/forks/")
    assert page.locator(".fork-tree li").count() >= 2
    page.goto(run_url + "forks/")
    assert page.locator(".fork-tree li.current").count() == 1 and page.locator(".fork-tree li").count() >= 2
    page.goto(run_url + "effects/")
    assert int(page.inner_text(".card:has(span:text('reused (hits)')) b")) == 0
    assert not page.errors


def test_hostile_completion_renders_as_inert_text(page, server):
    title = page.title()
    start_demo(page, server, "xss")
    wait_state(page, "finished", "failed")
    run_title = page.title()
    page.reload()
    for sid in (0, 1):
        page.click(f"#step-row-{sid}")
        detail_shown(page, sid)
        for key in "12345":
            page.keyboard.press(key)
            page.wait_for_timeout(150)
    page.goto(page.url.split("/steps/")[0].rstrip("/") + "/effects/")
    assert page.evaluate("window.__xss") is None
    assert page.title() == run_title and "pwned" not in page.title() and title
    page.goto(page.url.replace("/effects/", "/steps/0/?tab=source"))
    assert "<script>document.title='pwned'" in page.inner_text(".src-code")
    assert page.locator(".src-code script, .src-code img, .tree img, .tree script").count() == 0
    assert not [e for e in page.errors if "dialog" in e]
    assert page.evaluate("window.__xss") is None


def test_keyboard_navigation_between_steps_and_tabs(page, server):
    run_url = start_demo(page, server, "countdown")
    wait_state(page, "finished")
    page.goto(run_url)
    sel = lambda: page.get_attribute("#ide", "data-selected")  # noqa: E731
    assert sel() == "10"
    page.keyboard.press("k")
    detail_shown(page, 9)
    assert sel() == "9" and page.url.endswith("/steps/9/")
    page.keyboard.press("ArrowUp")
    detail_shown(page, 8)
    page.keyboard.press("j")
    detail_shown(page, 9)
    page.keyboard.press("ArrowDown")
    detail_shown(page, 10)
    assert page.locator("#step-row-10.sel").count() == 1
    page.keyboard.press("3")
    detail_shown(page, 10, ".tab-pane[data-tab='diff']")
    assert page.locator(".tabs .tab.on").get_attribute("data-tab") == "diff"
    page.keyboard.press("k")                       # the open tab stays open on the next step
    detail_shown(page, 9, ".tab-pane[data-tab='diff']")
    # typing in a text field does not move the selection
    page.goto(server.url + "/")
    page.fill("textarea[name=prompt]", "jjkk")
    assert page.input_value("textarea[name=prompt]") == "jjkk"
    assert not page.errors


def test_a_tab_picked_while_a_step_loads_is_the_tab_that_step_opens_on(page, server):
    """A slow detail load must not be undone: the tab picked meanwhile applies to the step
    being loaded, and the view does not fall back to the step shown before."""
    run_url = start_demo(page, server, "countdown")
    wait_state(page, "finished")
    page.goto(run_url)
    detail_shown(page, 10)
    held = []

    def hold_first(route):
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r".*/steps/8/\?part=detail.*"), hold_first)
    page.click("#step-row-8")
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(25)
    assert held and page.get_attribute("#step-detail", "aria-busy") == "true"
    page.keyboard.press("3")                              # while step 8 is on its way
    page.wait_for_timeout(300)
    assert page.locator(".tab-pane[data-tab='diff']").count() == 0   # not loaded into step 10
    held[0].continue_()
    detail_shown(page, 8, ".tab-pane[data-tab='diff']")
    page.wait_for_timeout(1500)                           # nothing reloads another step later
    assert page.get_attribute("#ide", "data-selected") == "8"
    assert page.locator("#detail[data-step='8'] .tab-pane[data-tab='diff']").count() == 1
    assert page.url.endswith("/steps/8/?tab=diff")
    assert not page.errors


def test_reconnecting_socket_catches_up_without_duplicates(page, server):
    urls = []
    page.on("websocket", lambda ws: urls.append(ws.url))
    start_demo(page, server, "countdown")
    page.wait_for_function("() => document.querySelectorAll('#step-rows > .row').length >= 3")
    # the tab goes to the background (htmx closes the socket) and comes back while the run
    # went on: the new socket must ask for exactly the events after the last one seen
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_timeout(1500)
    assert rows(page) < 11
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    wait_state(page, "finished", timeout=30)
    page.wait_for_function("() => document.querySelectorAll('#step-rows > .row').length === 11")
    assert len(urls) >= 2
    resumed_from = int(re.search(r"last_seq=(\d+)", urls[-1]).group(1))
    assert resumed_from > 0                      # asked only for what it had not seen
    ids = page.eval_on_selector_all("#step-rows > .row", "rs => rs.map(r => r.dataset.step)")
    assert ids == [str(i) for i in range(11)]     # nothing missing, nothing twice
    assert not page.errors
