"""Compare in real Chromium: fork a demo run at step 3 with an edited prefix, follow the fork's
"Compare with the parent" link, and see the first divergence marked at the fork step with the
earlier steps' effects reused from the cache; then the Charts view of the parent."""

from __future__ import annotations

import re

import pytest

from .test_ide import start_demo, wait_state

pytestmark = pytest.mark.browser


def test_compare_a_fork_with_an_edit_against_its_parent(page, server):
    run_url = start_demo(page, server, "countdown")
    wait_state(page, "finished")
    page.goto(run_url + "steps/3/")
    page.click(".fork-box > summary")
    page.check(".fork-edit-toggle")
    ta = page.locator(".fork-edit textarea[name=text]")
    page.wait_for_function("el => !el.disabled && el.value.length > 0", arg=ta.element_handle())
    ta.fill(ta.input_value() + ' (def edited-by-a-person "yes")')
    page.click(".fork-form button.primary")
    page.wait_for_url(lambda u: "/runs/" in u and u.split("/runs/")[1][:36] != run_url.split("/runs/")[1][:36])
    wait_state(page, "finished", "failed")
    page.reload()
    page.click("#compare-parent")
    page.wait_for_url(re.compile(r".*/compare/[0-9a-f-]{36}/$"))
    assert page.get_attribute("#compare", "data-first-divergence") == "3"
    first = page.locator("#aligned tr.first-div")
    assert first.count() == 1 and first.get_attribute("data-step") == "3"
    assert page.locator("#aligned tr.diverged[data-step='2']").count() == 0
    assert page.locator("#compare-step[data-step='3'] .form-diff .drow").count() >= 1
    # an earlier step: every effect of the fork was reused from the parent's cache
    page.click("#aligned tr[data-step='1'] a")
    page.wait_for_selector("#compare-step[data-step='1']")
    verdicts = page.locator("#effect-diff tbody tr")
    assert verdicts.count() >= 1
    assert all("reused (hit)" in t.lower() and "same result" in t for t in verdicts.all_inner_texts())
    # charts of the parent: the context chart has one point per step, with the stored lengths
    page.goto(run_url + "charts/")
    points = page.locator("#chart-context circle.pt")
    assert points.count() == int(page.inner_text(".card:has(span:text('steps')) b"))
    assert not page.errors
