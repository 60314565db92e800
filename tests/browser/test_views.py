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
    page.click("#pause-box form[action$='/stop/'] button")     # leave nothing running for the next test
    wait_state(page, "stopped", "failed")
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


def test_share_link_copy_button_and_a_revoked_link_says_so(page, server):
    run_url = start_demo(page, server, "countdown")
    wait_state(page, "finished")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.click("form[action$='/share/'] button")
    page.wait_for_selector("#share-copy")
    link = server.url + page.get_attribute("#share-link", "href")
    page.click("#share-copy")
    page.wait_for_selector("#share-copy[data-copied='true']")
    assert page.evaluate("navigator.clipboard.readText()") == link
    # anyone with the link sees the run, read-only
    other = page.context.browser.new_context()
    anon = other.new_page()
    anon.goto(link)
    anon.wait_for_selector("#run-state")
    # revoked: the same link now says so on a page of the app, not a bare 404
    page.click("form[action$='/unshare/'] button")
    page.wait_for_selector("form[action$='/share/'] button")
    resp = anon.goto(link)
    assert resp.status == 404
    assert "revoked" in anon.inner_text("#share-gone h1")
    bg = anon.evaluate("getComputedStyle(document.querySelector('.notice')).backgroundColor")
    assert bg not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")     # the app's stylesheet applies
    # the favicon is a real file
    icon = anon.evaluate("document.querySelector('link[rel=icon]').href")
    assert anon.request.get(icon).status == 200
    # the sign-in page is in the app's style too
    anon.goto(server.url + "/accounts/login/")
    assert anon.locator("main.auth-box #id_username").count() == 1
    assert anon.evaluate("getComputedStyle(document.body).backgroundColor") == \
        page.evaluate("getComputedStyle(document.body).backgroundColor")
    other.close()
    assert not page.errors


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def _inside(page, selector: str) -> bool:
    return page.eval_on_selector_all(
        selector, "els => els.length > 0 && els.every(e => { const r = e.getBoundingClientRect();"
                  " return e.checkVisibility() && r.right <= window.innerWidth + 0.5 && r.left >= 0; })")


def test_pages_fit_1024_px_and_long_words_do_not_widen_them(page, server):
    page.set_viewport_size({"width": 1024, "height": 800})
    long_title = "x" * 190
    page.goto(server.url + "/")
    page.fill("#new-run-form input[name=title]", long_title)
    page.fill("textarea[name=prompt]", "Count down from 10, one number per turn.")
    page.select_option("select[name=model]", "demo:countdown")
    page.check("input[name=bp_before_model]")
    page.click("#new-run-form button.primary")
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}/$"))
    page.wait_for_selector("#pause-box[data-point='before_model']")
    page.wait_for_function("() => document.querySelector('#ide').dataset.state === 'paused'")
    assert _fits(page)
    assert _inside(page, "#run-controls .ctl-paused button")          # Resume, Step, Stop not clipped
    assert _inside(page, ".views a")
    page.click("#pause-box form[action$='/stop/'] button")
    wait_state(page, "stopped", "failed")
    page.goto(server.url + "/")
    assert _fits(page) and _inside(page, "#new-run-form button.primary")
    assert _inside(page, ".new-run")
    # the effect cache of a fork with an edit: arguments readable, the miss explained
    page.set_viewport_size({"width": 1440, "height": 800})
    parent = start_demo(page, server, "countdown")
    wait_state(page, "finished")
    page.goto(parent + "steps/3/")
    page.click(".fork-box > summary")
    page.check(".fork-edit-toggle")
    page.wait_for_function("() => document.querySelector('.fork-edit textarea').value.length > 0")
    ta = page.locator(".fork-edit textarea")
    ta.fill(ta.input_value() + "(def human-note 1) ")
    page.click(".fork-form button.primary")
    page.wait_for_url(lambda u: u.rstrip("/") != parent.rstrip("/") and "/runs/" in u)
    wait_state(page, "finished")
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(page.url.split("/steps/")[0].rstrip("/") + "/effects/?status=miss")
    assert _fits(page)
    width = page.evaluate("document.querySelector('.fx-io .fold-cell').getBoundingClientRect().width")
    assert width > 250, width                                       # was ~110 px
    assert "What differs from the recorded call: 1 change" in page.inner_text(".fx-why summary")
    assert "(def human-note 1)" in page.inner_text(".fx-why .drow")
    assert not page.errors


def test_the_step_header_fits_one_line_at_1440_px(page, server):
    page.set_viewport_size({"width": 1440, "height": 900})
    run_url = start_demo(page, server, "io-task")
    wait_state(page, "finished")
    page.goto(run_url + "steps/3/")
    detail_shown(page, 3)
    tops = page.eval_on_selector_all(".d-head > *:not([hidden])", "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    assert max(tops) - min(tops) < 12, tops


def test_a_long_changed_form_expands_in_the_diff_and_the_line_diff_has_no_stray_marks(page, server):
    start_run(page, server, prompt="Count down from 10, one number per turn.", model="demo:countdown",
              before_model=True)
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='0']")
    editor = page.locator("#edit-text")
    notes = " ".join(f':note{i} "a long enough note number {i}"' for i in range(8))
    editor.fill(editor.input_value() + f"(def notes {{{notes}}}) ")
    page.wait_for_selector(".editor-status.ok")
    page.click("#edit-form button[value=continue]")
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='1']")
    page.click("#pause-box form[action$='/stop/'] button")
    wait_state(page, "stopped", "failed")
    page.click("#step-row-0")
    detail_shown(page, 0)
    page.keyboard.press("3")
    detail_shown(page, 0, ".tab-pane[data-tab='diff']")
    human = page.locator(".drow.dk-human details.dform")
    assert human.count() == 1
    human.locator("summary").click()
    full = human.locator(".dform-full").inner_text()
    assert full.startswith("(def notes\n") and ':note7 "a long enough note number 7"}' in full
    page.click(".line-diff > summary")
    marks = page.eval_on_selector_all(".ldiff td.lt, .ldiff td.ln",
                                      "els => els.filter(e => e.scrollWidth > e.clientWidth).length")
    assert marks == 0                                  # no cell cut to an ellipsis "."
    added = page.eval_on_selector_all(".ldiff tr.lt-add td.lc", "els => els.map(e => e.textContent)")
    assert any(":note3" in t for t in added) and len(added) > 3     # the new form, laid out
    page.keyboard.press("6")
    detail_shown(page, 0, ".tab-pane[data-tab='sent']")
    assert not page.errors
