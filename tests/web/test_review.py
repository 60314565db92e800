"""Review: threads anchored on a step, a diff row or a tree node, Markdown rendered safely,
resolve / reopen, verdicts, review links (signed-in users comment; share viewers see nothing),
threads shown on a fork's replayed steps, and threads carried by run bundles."""

from __future__ import annotations

import pytest

from spellide.spell.api import RunConfig
from spellide.web import review, runner
from spellide.web.bundles import export_bundle, import_bundle
from spellide.web.models import ReviewThread, Run, Step, Verdict

from .conftest import finish

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = ["(def x 1) '(!extend)", "(def y [1 2 3]) '(!extend)", "(+ x (count y))"]
XSS = ('<script>alert(1)</script> **bold** [link](javascript:alert(2)) <img src=x onerror=alert(3)> '
       '`code` [ok](https://example.org)')


@pytest.fixture
def run(user, scripted):
    r = finish(runner.start_run(user, RunConfig(prompt="P", model=scripted(SCRIPT)), "review me"))
    assert r.status == Run.Status.FINISHED, r.error
    return r


def post(client, url, **data):
    return client.post(url, data, HTTP_HX_REQUEST="true")


def test_threads_on_step_hunk_and_node(client, user, run):
    client.force_login(user)
    panel = client.get(f"/runs/{run.public_id}/steps/1/review/").content.decode()
    assert "No comments on this step yet" in panel and 'name="hunk"' in panel
    hunk = review.hunks(run, Step.objects.get(run=run, step_id=1))[0]
    r = post(client, f"/runs/{run.public_id}/review/comment/", step=1, anchor="hunk", hunk=hunk["index"], body=XSS)
    assert r.status_code == 200
    html = r.content.decode()
    t = ReviewThread.objects.get(run=run)
    assert t.anchor == "hunk" and t.step_id == 1 and "(def y [1 2 3])" in t.excerpt   # the server read the anchor
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html   # shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html and 'href="https://example.org"' in html
    r = post(client, f"/runs/{run.public_id}/review/comment/", step=1, anchor="node", node="0", body="the root")
    assert r.status_code == 200 and ReviewThread.objects.filter(run=run, anchor="node").count() == 1
    for bad, message in (({"anchor": "hunk", "hunk": "999"}, "has no changed row"),
                         ({"anchor": "node", "node": "9.9.9"}, "has no node"),
                         ({"anchor": "nope"}, "unknown anchor"), ({"anchor": "step", "body": " "}, "needs some text"),
                         ({"anchor": "step", "body": "x" * 20_001}, "at most 20,000")):
        r = post(client, f"/runs/{run.public_id}/review/comment/", **dict({"step": 1, "body": "hi"}, **bad))
        assert r.status_code == 400 and message in r.content.decode(), bad
    assert ReviewThread.objects.filter(run=run).count() == 2
    r = post(client, f"/review/threads/{t.pk}/reply/", body="agreed", on=str(run.public_id))
    assert "agreed" in r.content.decode()
    post(client, f"/review/threads/{t.pk}/resolve/", on=str(run.public_id))
    t.refresh_from_db()
    assert t.resolved and t.resolved_by == user.username
    post(client, f"/review/threads/{t.pk}/reopen/", on=str(run.public_id))
    t.refresh_from_db()
    assert not t.resolved
    page = client.get(f"/runs/{run.public_id}/review/").content.decode()
    assert "2 open · 0 resolved" in page and "diff row" in page and "tree node 0" in page


def test_verdicts_newest_per_reviewer(client, user, run):
    client.force_login(user)
    post(client, f"/runs/{run.public_id}/review/verdict/", verdict="changes_requested", note="fix *this*")
    post(client, f"/runs/{run.public_id}/review/verdict/", verdict="approved")
    assert post(client, f"/runs/{run.public_id}/review/verdict/", verdict="maybe").status_code == 400
    assert [v["verdict"] for v in review.verdicts(run)] == ["approved"]
    assert Verdict.objects.filter(run=run).count() == 2


def test_review_link_lets_signed_in_users_comment_and_nobody_else(client, user, other_user, django_user_model, run):
    client.force_login(other_user)
    assert client.get(f"/runs/{run.public_id}/review/").status_code == 404
    assert post(client, f"/runs/{run.public_id}/review/comment/", step=1, body="sneaky").status_code == 404
    client.force_login(user)
    post(client, f"/runs/{run.public_id}/review/comment/", step=1, body="owner note")
    assert post(client, f"/runs/{run.public_id}/review/link/", **{"from": "run"}).status_code == 200
    run.refresh_from_db()
    token = run.review_token
    assert token
    client.force_login(other_user)
    assert post(client, f"/runs/{run.public_id}/review/link/").status_code == 404     # only the owner
    r = client.get(f"/review/{token}/")
    assert r.status_code == 302 and r["Location"] == f"/runs/{run.public_id}/"
    assert client.get(f"/runs/{run.public_id}/").status_code == 200
    assert "owner note" in client.get(f"/runs/{run.public_id}/steps/1/review/").content.decode()
    assert post(client, f"/runs/{run.public_id}/review/comment/", step=1, body="reviewer note").status_code == 200
    assert post(client, f"/runs/{run.public_id}/stop/").status_code == 403      # read-only
    # a share link's anonymous viewer sees the run but no review at all
    Run.objects.filter(pk=run.pk).update(share_token="tok-review-1")
    client.logout()
    shared = client.get("/share/tok-review-1/steps/1/").content.decode()
    assert "reviewer note" not in shared and "review-box" not in shared and "/review/" not in shared
    assert client.get(f"/runs/{run.public_id}/steps/1/review/").status_code == 302   # to the login page
    assert client.get(f"/review/{token}/").status_code == 302                         # to the login page
    # revoking ends every grant
    client.force_login(user)
    post(client, f"/runs/{run.public_id}/review/unlink/")
    client.force_login(other_user)
    assert client.get(f"/runs/{run.public_id}/").status_code == 404
    r = client.get(f"/review/{token}/")
    assert r.status_code == 404 and "revoked" in r.content.decode()


def test_threads_on_parent_steps_show_on_a_fork(client, user, run):
    client.force_login(user)
    post(client, f"/runs/{run.public_id}/review/comment/", step=0, body="on step zero")
    post(client, f"/runs/{run.public_id}/review/comment/", step=2, body="on step two")
    fork = finish(runner.fork_run(run, user, 1))
    zero = client.get(f"/runs/{fork.public_id}/steps/0/review/").content.decode()
    assert "on step zero" in zero and "the parent run" in zero
    assert "on step two" not in client.get(f"/runs/{fork.public_id}/steps/2/review/").content.decode()
    # replying from the fork writes to the parent's thread and re-renders the fork's panel
    t = ReviewThread.objects.get(run=run, step_id=0)
    r = post(client, f"/review/threads/{t.pk}/reply/", body="seen from the fork", on=str(fork.public_id))
    assert f'id="step-review-0"' in r.content.decode() and t.comments.count() == 2


def test_bundles_carry_the_review(client, user, run):
    client.force_login(user)
    post(client, f"/runs/{run.public_id}/review/comment/", step=1, body="keep me")
    post(client, f"/runs/{run.public_id}/review/verdict/", verdict="approved", note="fine")
    data = export_bundle(run, user)
    copy = import_bundle(data, user)
    t = ReviewThread.objects.get(run=copy)
    assert t.step_id == 1 and [c.body for c in t.comments.all()] == ["keep me"]
    assert [v["verdict"] for v in review.verdicts(copy)] == ["approved"]
