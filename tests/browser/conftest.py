"""Browser tests: real Chromium (Debian's) through Playwright's sync API, one
``sync_playwright()`` per test (pytest-playwright's session-wide instance and pytest-asyncio
break each other), against the app served by daphne in a subprocess."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from .server import AppServer, launch, login


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian chromium is not installed (./dev test installs it)")
    srv = AppServer(tmp_path_factory.mktemp("browser-app")).start()
    yield srv
    srv.stop()


@contextmanager
def open_page(app: AppServer):
    """A signed-in page of ``app`` in a fresh Chromium; page errors and dialogs are collected
    in ``page.errors`` so a test can assert that none happened."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(f"pageerror: {e}"))
        pg.on("dialog", lambda d: (pg.errors.append(f"dialog: {d.message}"), d.dismiss()))
        login(pg, app)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


@pytest.fixture
def page(server):
    with open_page(server) as pg:
        yield pg
