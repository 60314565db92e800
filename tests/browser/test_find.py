"""Finding things in Chromium: the step search in a run page's steps pane (htmx, as typed)
opens the step it found; the run list renames, tags, filters by tag and deletes."""

from __future__ import annotations

import re

import pytest

from .test_ide import detail_shown, start_demo, wait_state

pytestmark = pytest.mark.browser


def test_step_search_finds_and_opens_a_step(page, server):
    start_demo(page, server, "countdown")
    wait_state(page, "finished", timeout=30)
    page.evaluate("window.__noReload = 1")
    page.fill(".step-search input[name=q]", "def n7")
    page.wait_for_selector("#step-hits a.hit[data-step='3']")     # anywhere (a later prefix may carry it too)
    page.select_option(".step-search select[name=where]", "completion")
    page.wait_for_function("() => [...document.querySelectorAll('#step-hits a.hit')].map(a => a.dataset.step).join() === '3'")
    assert "def n7" in page.inner_text("#step-hits mark")
    page.select_option(".step-search select[name=where]", "value")     # not in any value
    page.wait_for_selector("#step-hits li.muted:has-text('No step matches')")
    page.select_option(".step-search select[name=where]", "completion")
    page.click("#step-hits a.hit[data-step='3']")
    page.wait_for_function("() => document.querySelector('#ide').dataset.selected === '3'")
    detail_shown(page, 3)
    assert page.evaluate("window.__noReload") == 1     # opened in the page, no reload
    assert page.errors == []


def test_rename_tag_filter_and_delete_from_the_run_list(page, server):
    url = start_demo(page, server, "call-now")
    wait_state(page, "finished", timeout=30)
    public_id = re.search(r"/runs/([0-9a-f-]{36})/", url).group(1)
    page.goto(server.url + "/")
    row = page.locator(f"#run-{public_id}")
    row.locator(".run-actions > summary").click()
    row.locator("input[name=title]").fill("renamed by the browser test")
    row.locator("button:has-text('Rename')").click()
    page.wait_for_selector(".msg:has-text('renamed to')")
    row = page.locator(f"#run-{public_id}")
    assert "renamed by the browser test" in row.inner_text()
    row.locator(".run-actions > summary").click()
    row.locator("input[name=tags]").fill("findme-tag other")
    row.locator("button:has-text('Tag')").click()
    page.wait_for_selector(".msg:has-text('tagged findme-tag, other')")
    page.locator(f"#run-{public_id} a.chip.tag:has-text('findme-tag')").click()
    page.wait_for_url(re.compile(r".*\?tag=findme-tag$"))
    assert page.locator(".runs-table tbody tr").count() == 1
    assert page.input_value(".run-filters input[name=tag]") == "findme-tag"
    row = page.locator(f"#run-{public_id}")
    row.locator(".run-actions > summary").click()
    row.locator("button:has-text('Delete run')").click()
    page.wait_for_selector(".msg:has-text('deleted')")
    assert page.locator(f"#run-{public_id}").count() == 0
    assert "?tag=findme-tag" in page.url                      # back to the same filtered list
    assert page.errors == []
