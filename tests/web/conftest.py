"""Fixtures of the web tests: users, scripted models, waiting for runs, and cleanup of run
threads (a run still executing when a test ends would write into the next test's data)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = b"127.0.0.1"  # the Host header the websocket tests send (the origin check compares it)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def scripted(tmp_path: Path) -> Callable[[list[Any]], str]:
    """Write a scripted model file; returns the RunConfig.model spec for it."""
    counter = [0]

    def make(completions: list[Any]) -> str:
        counter[0] += 1
        p = tmp_path / f"script{counter[0]}.json"
        p.write_text(json.dumps({"completions": completions}), encoding="utf-8")
        return f"scripted:{p}"

    return make


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def wait_status(run, statuses: Iterable[str] | str, timeout: float = 20.0):
    from spellide.web.models import Run
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    def check():
        r = Run.objects.get(pk=run.pk)
        return r if r.status in wanted else None
    return wait_until(check, timeout)


def finish(run, timeout: float = 30.0):
    """Wait for the run's execution (thread + persistence) to end; return the fresh row."""
    from spellide.web import runner
    from spellide.web.models import Run
    assert runner.wait_for(run, timeout), "the run did not end in time"
    return Run.objects.get(pk=run.pk)


@pytest.fixture(autouse=True)
def _fresh_text_cache():
    """Program texts are cached per process by primary key, and the data of an earlier test
    (rolled back or flushed) reuses keys: start every test with an empty cache."""
    from spellide.web.models import clear_text_cache
    clear_text_cache()
    yield
    clear_text_cache()


@pytest.fixture(autouse=True)
def _stop_runs_after_test():
    yield
    from spellide.web import runner
    for active in runner.active_runs():
        active.controller.act("stop")
    for active in runner.active_runs():
        active.done.wait(30)


@pytest.fixture
def fast_demos(settings, tmp_path_factory):
    """The bundled demos without their per-completion latency (meant for people watching)."""
    import shutil
    src = Path(settings.DEMOS_DIR)
    dst = tmp_path_factory.mktemp("demos")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    for f in dst.glob("*.json"):
        data = json.loads(f.read_text(encoding="utf-8"))
        for c in data.get("completions", []):
            if isinstance(c, dict):
                c["latency"] = 0
        f.write_text(json.dumps(data), encoding="utf-8")
    settings.DEMOS_DIR = dst
    return dst
