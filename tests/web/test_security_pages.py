"""Page-level security of issue 11: a share link shows only what was shared (the Forks view
and the header's fork count), the response headers (CSP, nosniff, Referrer-Policy), the
HTTPS switch, login rate limiting, and the auth views (working and styled, or not routed)."""

from __future__ import annotations

import pytest
from django.test import Client

from spellide.web.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def family(user, other_user):
    """root -> {shared, sibling}; shared -> {grandchild}; root -> staff_fork (by bob)."""
    root = Run.objects.create(owner=user, title="ROOT-secret", status="completed")
    shared = Run.objects.create(owner=user, title="SHARED-run", status="completed", parent_run=root,
                                fork_step=2, share_token="tok-shared-123")
    Run.objects.create(owner=user, title="SIBLING-secret", status="failed", parent_run=root, fork_step=1)
    Run.objects.create(owner=user, title="GRANDCHILD-secret", status="running", parent_run=shared,
                       fork_step=1)
    other_user.is_staff = True
    other_user.save()
    Run.objects.create(owner=other_user, title="STAFF-fork", status="completed", parent_run=root,
                       fork_step=3)
    return {"root": root, "shared": shared}


SECRETS = ("ROOT-secret", "SIBLING-secret", "GRANDCHILD-secret", "STAFF-fork")


def test_share_link_forks_view_lists_only_the_shared_run(family):
    for path in ("/share/tok-shared-123/forks/", "/share/tok-shared-123/", "/share/tok-shared-123/setup/"):
        html = Client().get(path).content.decode()
        assert "SHARED-run" in html, path
        for secret in SECRETS:
            assert secret not in html, (path, secret)
        assert 'class="count"' not in html, path          # no count of forks it cannot see
    html = Client().get("/share/tok-shared-123/forks/", headers={"HX-Request": "true"}).content.decode()
    assert "SHARED-run" in html and not any(s in html for s in SECRETS)
    assert html.count("<li ") == 1 and 'class="d0 current"' in html


def test_owner_sees_their_own_family_but_not_someone_elses_fork(client, user, family):
    client.force_login(user)
    html = client.get(f"/runs/{family['shared'].public_id}/forks/").content.decode()
    for title in ("ROOT-secret", "SHARED-run", "SIBLING-secret", "GRANDCHILD-secret"):
        assert title in html
    assert "STAFF-fork" not in html                        # bob's run: not alice's to read
    assert 'class="d1 current"' in html and 'class="d2"' in html
    html = client.get(f"/runs/{family['root'].public_id}/").content.decode()
    assert '<span class="count">2</span>' in html           # shared + sibling; not bob's fork


def test_a_visible_fork_under_a_hidden_run_moves_up():
    from spellide.web.views.pages import visible_forest
    forest = [{"depth": 0, "visible": False}, {"depth": 1, "visible": True},
              {"depth": 2, "visible": False}, {"depth": 3, "visible": True},
              {"depth": 1, "visible": True}]
    assert [f["depth"] for f in visible_forest(forest)] == [0, 1, 0]
