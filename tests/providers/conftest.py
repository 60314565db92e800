"""Fixtures for the provider tests: one real local model server per test module (requests and
script are reset for every test), a recognizable fake API key in the environment, and a
backoff-sleep recorder so retry waits are asserted without being slept."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from spellide.spell.models.profiles import get_model

from .servers import ModelServer

FAKE_KEY = "sk-fake-KEY-4f1c9d27be80a6"
KEY_ENV = "SPELLIDE_TEST_FAKE_KEY"
PREFIX = '(quine completion (eval (do (quine prompt "Add two numbers") (quote (!extend)) '


class SleepRecorder:
    """Stands in for time.sleep in the retry policy: records each wait, sleeps ``real`` s."""

    def __init__(self, real: float = 0.0):
        self.waits: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(min(seconds, self.real))


@pytest.fixture(scope="module")
def _module_server():
    srv = ModelServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def server(_module_server: ModelServer) -> ModelServer:
    _module_server.reset()
    yield _module_server
    _module_server.reset()


@pytest.fixture
def fake_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def sleeper() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make(server: ModelServer, fake_key: str, sleeper: SleepRecorder) -> Callable[..., Any]:
    """``make("openai", "message", **profile_overrides)`` -> a provider aimed at the server."""

    def _make(provider: str, transport: str, **overrides: Any):
        base = server.openai_url if provider == "openai" else server.url
        fields: dict[str, Any] = {"base_url": base, "api_key_env": KEY_ENV, "max_retries": 3,
                                  "timeout": 5.0, "backoff_base": 0.01, "backoff_max": 0.1}
        fields.update(overrides)
        return get_model(f"{provider}:fake-model@{transport}", profiles={}, sleep=sleeper, **fields)

    return _make


class Deltas:
    """Collects on_delta chunks and on_restart signals; ``text`` = chunks since last restart."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.all: list[str] = []
        self.restarts: list[str] = []
        self.times: list[float] = []

    def __call__(self, chunk: str) -> None:
        self.chunks.append(chunk)
        self.all.append(chunk)
        self.times.append(time.perf_counter())

    def restart(self, reason: str) -> None:
        self.restarts.append(reason)
        self.chunks = []

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def request(self, prefix: str = PREFIX, **kw: Any):
        from spellide.spell.models.base import ModelRequest
        return ModelRequest(prefix, on_delta=self, extra={"on_restart": self.restart}, **kw)


@pytest.fixture
def deltas() -> Deltas:
    return Deltas()
