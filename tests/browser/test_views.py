"""What a person sees in the step views, in real Chromium: pretty-printed source with the
compact text a click away, a prefix edit checked as a prefix (refused with its place marked in
the editor, one refusal at a time)."""

from __future__ import annotations

import re

import pytest

from .test_ide import detail_shown, start_demo, start_run, state, wait_state

pytestmark = pytest.mark.browser


def test_a_prefix_edit_ending_in_a_string_is_refused_marked_and_replaced(page, server):
    start_run(page, server, prompt="Count down from 10, one number per turn.", model="demo:countdown",
              before_model=True)
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='0']")
    editor = page.locator("#edit-text")
    prefix = editor.input_value()
    broken = prefix + '(def broken "unterminated'
    editor.fill(broken)
    page.wait_for_selector(".editor-status.refused")
    status = page.inner_text(".editor-status")
    assert "inside a string" in status and re.search(r"line 1, column \d+", status), status
    assert page.inner_text(".editor-hl mark.err-mark") == '"'        # the place is marked
    page.click("#edit-form button[value=continue]")
    page.wait_for_selector("#editor-status .control-result.refused")
    assert "inside a string" in page.inner_text("#editor-status")
    assert state(page) == "paused" and editor.input_value() == broken
    # a second refused edit replaces the first refusal
    editor.fill(prefix + "(def y ]")
    page.wait_for_selector(".editor-status.refused:has-text('Unmatched')")
    page.click("#edit-form button[value=continue]")
    page.wait_for_selector("#editor-status .control-result.refused:has-text('Unmatched')")
    refusals = page.locator("#pause-box").inner_text()
    assert refusals.count("refused") == 1 and "inside a string" not in refusals, refusals
    # a good edit goes through and the run goes on
    editor.fill(prefix + "(def fixed 2) ")
    page.wait_for_selector(".editor-status.ok")
    page.click("#edit-form button[value=continue]")
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='1']")
    assert not page.errors


def test_source_is_pretty_printed_and_the_compact_text_is_a_click_away(page, server):
    run_url = start_demo(page, server, "io-task")
    wait_state(page, "finished")
    page.goto(run_url + "steps/4/?tab=source")
    detail_shown(page, 4, ".src[data-layout='pretty']")
    lines = page.locator(".src-code .sl").count()
    assert lines > 15
    first = page.inner_text("#L1")
    assert first.rstrip() == "(quine completion"
    assert page.inner_text("#L2").startswith("  (eval")
    # no line is wrapped by the browser at 1400 px: the layout's own width holds
    heights = page.eval_on_selector_all(".src-code .sl", "els => els.map(e => e.getBoundingClientRect().height)")
    assert max(heights) < 1.5 * min(heights)
    page.click("#layout-compact")
    page.wait_for_selector(".src[data-layout='compact']")
    assert page.locator(".src-code .sl").count() == 1
    assert "layout=compact" in page.url
    page.click("#layout-pretty")
    page.wait_for_selector(".src[data-layout='pretty']")
    # a tree row's source link selects the same text in the laid-out source
    page.goto(run_url + "steps/4/?tab=tree")
    detail_shown(page, 4, ".tree")
    link = page.locator(".tree .k-def .src-link").first
    link.click()
    page.wait_for_selector(".src[data-layout='pretty']")
    selected = page.evaluate("CSS.highlights.get('spell-sel') ? [...CSS.highlights.get('spell-sel')][0].toString() : ''")
    assert selected.startswith("(def ") and "\n" not in selected[:12]
    assert not page.errors
