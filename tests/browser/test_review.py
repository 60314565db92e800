"""Review in real Chromium: the owner comments on a row of a step's structural diff and opens a
review link; a second signed-in user who opens the link sees the comment in the step's Review
panel and answers it; an anonymous viewer of the run's share link sees neither."""

from __future__ import annotations

import pytest

from .server import login
from .test_ide import detail_shown, start_demo, wait_state

pytestmark = pytest.mark.browser

REVIEWER, REVIEWER_PW = "reviewer", "pw-reviewer-123"


def test_diff_row_comment_through_a_review_link(page, server):
    server.manage("shell", "-c", "from django.contrib.auth import get_user_model as g; U = g(); "
                  f"U.objects.filter(username='{REVIEWER}').exists() or U.objects.create_user('{REVIEWER}', password='{REVIEWER_PW}')")
    run_url = start_demo(page, server, "countdown")
    wait_state(page, "finished")
    page.goto(run_url + "steps/2/?tab=diff")
    detail_shown(page, 2)
    page.click(".review-box > summary")
    form = page.locator(".step-review .new-thread")
    form.wait_for()
    form.locator("select[name=anchor]").select_option("hunk")
    first_hunk = form.locator("select[name=hunk] option").first.get_attribute("value")
    form.locator("select[name=hunk]").select_option(first_hunk)
    form.locator("textarea[name=body]").fill("Why **this** form? <script>window.__pwned = 1</script>")
    form.locator("button").click()
    page.wait_for_selector(f".step-review .thread[data-anchor='hunk'][data-target='{first_hunk}'] strong")
    assert page.evaluate("window.__pwned") is None
    page.goto(run_url + "review/")
    page.click("#review-view button:text('Create a review link')")
    review_url = page.inner_text("#review-url").strip()
    browser = page.context.browser
    ctx = browser.new_context()
    try:
        other = ctx.new_page()
        login(other, server, REVIEWER, REVIEWER_PW)
        other.goto(review_url)
        other.wait_for_url(run_url)
        other.goto(run_url + "steps/2/?tab=diff")
        other.click(".review-box > summary")
        thread = other.locator(f".step-review .thread[data-anchor='hunk'][data-target='{first_hunk}']")
        thread.wait_for()
        assert "Why this form?" in thread.inner_text()
        thread.locator(".reply textarea").fill("Because the model appended it.")
        thread.locator(".reply button").click()
        other.wait_for_selector(".step-review .comment:has-text('Because the model appended it.')")
        assert other.locator("#run-controls").count() == 0          # a reviewer cannot steer
    finally:
        ctx.close()
    # an anonymous share viewer: the run, but no review
    page.goto(run_url)
    shared = page.evaluate("""async () => {
        const r = await fetch(location.pathname + 'share/', {method: 'POST', headers: {
            'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content, 'HX-Request': 'true'}});
        return r.status; }""")
    assert shared in (200, 201, 302)
    token = server.manage("shell", "-c", "from spellide.web.models import Run; "
                          f"print(Run.objects.get(public_id='{run_url.split('/runs/')[1][:36]}').share_token)").strip().splitlines()[-1]
    ctx = browser.new_context()
    try:
        anon = ctx.new_page()
        resp = anon.goto(f"{server.url}/share/{token}/steps/2/?tab=diff")
        assert resp.status == 200, (token, resp.status, anon.content()[:500])
        anon.wait_for_selector("#detail[data-step='2']")
        html = anon.content()
        assert "review-box" not in html and "Why" not in html and "Because the model" not in html
    finally:
        ctx.close()
    assert not page.errors
