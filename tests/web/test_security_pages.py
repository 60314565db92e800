"""Page-level security of issue 11: a share link shows only what was shared (the Forks view
and the header's fork count), the response headers (CSP, nosniff, Referrer-Policy), the
HTTPS switch, login rate limiting, and the auth views (working and styled, or not routed)."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from django.core.cache import cache
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


# --- response headers -----------------------------------------------------------------------------
def test_every_page_has_a_strict_csp_and_the_hardening_headers(client, user, family):
    client.force_login(user)
    run = family["shared"]
    for path in ("/", f"/runs/{run.public_id}/", f"/runs/{run.public_id}/effects/",
                 f"/runs/{run.public_id}/forks/", f"/runs/{run.public_id}/setup/",
                 "/accounts/password_change/", "/share/tok-shared-123/"):
        r = client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", csp
        assert directives["default-src"] == "'self'" and directives["object-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'" and "unsafe" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
        assert inline_code(r.content.decode()) == [], path   # nothing the policy would block
    r = Client().get("/accounts/login/")
    assert "'self'" in r.headers["Content-Security-Policy"] and inline_code(r.content.decode()) == []


def inline_code(html: str) -> list[str]:
    """What a CSP without 'unsafe-inline' blocks: inline scripts, event-handler attributes,
    style attributes and style elements (the page's real elements, not escaped run text)."""
    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            names = {k for k, _ in attrs}
            if tag == "style" or (tag == "script" and "src" not in names):
                found.append(f"<{tag}>")
            found.extend(f"<{tag} {k}=>" for k in names if k == "style" or k.startswith("on"))
            found.extend(f"<{tag} {k}={v}>" for k, v in attrs if (v or "").startswith("javascript:"))

    Finder().feed(html)
    return found


def test_https_switch_sets_secure_cookies_and_hsts():
    code = ("from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "spellide.web.settings"}
    env.pop("SPELLIDE_HTTPS", None)
    off = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert off == ["False", "False", "0"]
    on = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code],
                        env={**env, "SPELLIDE_HTTPS": "1"}, capture_output=True, text=True,
                        check=True).stdout.split()
    assert on == ["True", "True", str(365 * 24 * 3600)]


# --- sign-in rate limit -----------------------------------------------------------------------------
@pytest.fixture
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_login_is_rate_limited_per_username_and_address(user, fresh_cache, settings):
    settings.SPELLIDE_LOGIN_FAILURES = 3
    c = Client()

    def attempt(password, username="alice", addr="10.0.0.1"):
        return c.post("/accounts/login/", {"username": username, "password": password},
                      REMOTE_ADDR=addr)

    for _ in range(3):
        assert attempt("wrong").status_code == 200             # the form again, with the error
    r = attempt("pw-alice-123")                                # even the right password now
    assert r.status_code == 429
    assert "Too many failed sign-ins" in r.content.decode() and "_auth_user_id" not in c.session
    assert attempt("pw-alice-123", addr="10.0.0.2").status_code == 302   # another address
    Client().post("/accounts/logout/")
    assert attempt("wrong", username="bob").status_code == 200            # another username
    cache.clear()                                              # the window ended
    assert attempt("pw-alice-123").status_code == 302


def test_a_successful_sign_in_clears_the_count(user, fresh_cache, settings):
    settings.SPELLIDE_LOGIN_FAILURES = 3

    def attempt(password):
        return Client().post("/accounts/login/", {"username": "alice", "password": password}).status_code

    for _ in range(2):
        assert [attempt("x"), attempt("x"), attempt("pw-alice-123")] == [200, 200, 302]


# --- auth views -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/accounts/password_reset/", "/accounts/password_reset/done/",
                                  "/accounts/reset/MQ/set-password/", "/accounts/reset/done/"])
def test_password_reset_is_not_routed(path, client, user):
    assert Client().get(path).status_code == 404
    client.force_login(user)
    assert client.get(path).status_code == 404


def test_account_views_work_for_their_users(client, user):
    anon = Client()
    assert anon.get("/accounts/login/").status_code == 200
    r = anon.get("/accounts/password_change/")
    assert r.status_code == 302 and r.url.startswith("/accounts/login/")
    client.force_login(user)
    assert client.get("/accounts/logout/").status_code == 405           # sign-out is a POST
    r = client.get("/accounts/password_change/")
    assert r.status_code == 200 and 'class="auth-box"' in r.content.decode()
    r = client.post("/accounts/password_change/", {"old_password": "nope", "new_password1": "x",
                                                   "new_password2": "x"})
    assert r.status_code == 200 and "errorlist" in r.content.decode()
    r = client.post("/accounts/password_change/", {"old_password": "pw-alice-123",
                                                   "new_password1": "a-new-pass-456",
                                                   "new_password2": "a-new-pass-456"})
    assert r.status_code == 302 and r.url == "/accounts/password_change/done/"
    assert client.get(r.url).status_code == 200                          # still signed in
    assert client.post("/accounts/logout/").status_code == 302
    assert Client().login(username="alice", password="a-new-pass-456")
