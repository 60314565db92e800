"""A provider-backed run in the IDE, in real Chromium: the app (daphne in a subprocess) calls a
real OpenAI-compatible HTTP server on 127.0.0.1 (tests/providers/servers.py) through the same
provider code users run, and the browser shows the completion as it streams in."""

from __future__ import annotations

import pytest

from spellide.spell.api import system_prompt
from tests.providers.servers import ModelServer, Reply

from .conftest import open_page
from .server import AppServer
from .test_ide import start_run, wait_state

pytestmark = pytest.mark.browser

KEY_ENV = "SPELLIDE_TEST_FAKE_KEY"
ANSWER = '(str "streamed " "from a local " "OpenAI-compatible " "server")'


@pytest.fixture(scope="module")
def model_server():
    srv = ModelServer(default=Reply(text=ANSWER, chunk=4, delay_between=0.12,
                                    usage=(900, 100, 40))).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def provider_app(tmp_path_factory, model_server):
    workdir = tmp_path_factory.mktemp("provider-app")
    profiles = workdir / "models.toml"
    profiles.write_text(f"""
[profiles.local-stream]
description = "the test server, OpenAI chat, message transport"
provider = "openai"
base_url = "{model_server.openai_url}"
model = "fake-model"
transport = "message"
api_key_env = "{KEY_ENV}"
price_input = 2.0
price_cached_input = 0.5
price_output = 8.0
""")
    srv = AppServer(workdir, extra_env={"SPELLIDE_MODELS": str(profiles),
                                        KEY_ENV: "sk-fake-browser-KEY-81c2"}).start()
    yield srv
    srv.stop()


def test_completion_streams_into_the_running_step(provider_app, model_server):
    with open_page(provider_app) as page:
        start_run(page, provider_app, prompt="Say where the text comes from.", model="profile:local-stream")
        page.wait_for_selector("#live-0-completion")
        seen: list[str] = []
        for _ in range(200):
            text = page.evaluate("document.querySelector('#live-0-completion')?.textContent ?? null")
            if text is None:        # the step finished: its live strip is gone
                break
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            page.wait_for_timeout(40)
        # several growing partial texts, each exactly the start of the answer: nothing lost or
        # doubled, although the step's detail was loaded while pieces were arriving
        partial = [t for t in seen if t != ANSWER]
        assert len(partial) >= 3, seen
        assert all(ANSWER.startswith(t) for t in seen), seen
        assert [len(t) for t in seen] == sorted(len(t) for t in seen)

        assert wait_state(page, "finished") == "finished"
        assert '"streamed from a local OpenAI-compatible server"' in page.inner_text("#run-status")
        # the step says which model and transport answered, and what it cost
        page.wait_for_selector("#detail[data-step='0']")
        detail = page.inner_text("#detail")
        assert "fake-model" in detail and "(message)" in detail
        assert "sk-fake" not in page.content()                  # the key never reaches a page
        # the run's setup names the profile's settings and shows the system prompt it was sent
        page.click("nav.views a:has-text('Setup')")
        page.wait_for_selector("#system-prompt")
        assert "Reply with only the text that" in page.inner_text("#system-prompt")
        assert model_server.openai_url in page.inner_text("#setup-view")
        assert "sk-fake" not in page.content()
        assert not page.errors

    (req,) = [r for r in model_server.requests if r.path == "/v1/chat/completions"]
    assert req.body["stream"] is True
    assert req.body["messages"][0] == {"role": "system", "content": system_prompt("message")}  # as shown
    assert req.headers.get("authorization") == "Bearer sk-fake-browser-KEY-81c2"
