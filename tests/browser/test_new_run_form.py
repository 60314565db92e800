"""The new-run form in Chromium: a bad field comes back with its error next to it and
everything typed kept; the replay picker replaces one menu entry per recorded run."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_a_bad_field_shows_its_error_inline_and_keeps_what_was_typed(page, server):
    page.goto(server.url + "/")
    page.fill("#new-run-form input[name=title]", "careful <run>")
    page.fill("textarea[name=prompt]", "Count the words in notes.txt")
    page.fill("input[name=budget]", "-5")
    page.fill("input[name=depth]", "4")
    page.check("input[name=bp_after_completion]")
    page.select_option("select[name=workspace]", "empty")
    page.click("#new-run-form button.primary")
    page.wait_for_selector("#new-run-form .field-error")
    assert not re.search(r"/runs/[0-9a-f-]{36}/$", page.url)      # no run was started
    error = page.locator("label:has(input[name=budget]) .field-error")
    assert error.is_visible() and "budget must not be negative" in error.inner_text()
    assert page.locator(".field-error").count() == 1
    assert page.input_value("#new-run-form input[name=title]") == "careful <run>"
    assert page.input_value("textarea[name=prompt]") == "Count the words in notes.txt"
    assert page.input_value("input[name=budget]") == "-5"
    assert page.input_value("input[name=depth]") == "4"
    assert page.is_checked("input[name=bp_after_completion]")
    assert page.input_value("select[name=workspace]") == "empty"
    # fixing the field starts the run
    page.fill("input[name=budget]", "0.25")
    page.click("#new-run-form button.primary")
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}/$"))
    page.wait_for_selector("#run-state")
    assert page.errors == []


def test_an_unreadable_program_is_marked_in_its_editor_box(page, server):
    page.goto(server.url + "/")
    page.click(".program-box > summary")
    page.fill("textarea[name=program]", '(do (def broken "unterminated')
    # the editor says so as it is typed, the way the run would read it...
    page.wait_for_selector(".program-box .editor-status.refused")
    assert "EOF while reading string" in page.inner_text(".program-box .editor-status")
    # ...and the server refuses it with the position, the text kept
    page.click("#new-run-form button.primary")
    error = page.locator(".program-box .field-error")
    error.wait_for()
    assert "does not read: EOF while reading string" in error.inner_text()
    assert "line 1, column" in error.inner_text()
    assert page.locator(".program-box").get_attribute("open") is not None
    assert page.input_value("textarea[name=program]") == '(do (def broken "unterminated'
    assert page.errors == []
