"""The "As sent" tab: the exact request of a step's model call (a real provider against a
local HTTP server), rebuilt from the run's record; keys never shown; local models and cache
hits say that nothing went over the wire."""

from __future__ import annotations

import html as htmllib
import json
import re

import pytest

from spellide.spell.api import system_prompt

from .test_controls import _fast, client, run_from  # noqa: F401  (fixtures)
from .conftest import finish

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "sk-secret-key-778899"


def test_the_as_sent_tab_shows_the_exact_request_of_a_provider_call(client, tmp_path, monkeypatch):  # noqa: F811
    from tests.providers.servers import ModelServer, Reply

    with ModelServer(default=Reply(text="(def a 1) '(!extend)", tool="(def a 1) 42")) as srv:
        profiles = tmp_path / "models.toml"
        profiles.write_text(f'[profiles.tc]\nprovider = "openai"\nbase_url = "{srv.openai_url}"\n'
                            f'model = "fake-model"\ntransport = "tool-call"\napi_key_env = "TC_KEY"\n'
                            f'temperature = 0.3\n')
        monkeypatch.setenv("SPELLIDE_MODELS", str(profiles))
        monkeypatch.setenv("TC_KEY", KEY)
        run = finish(run_from(client.post("/runs/start/", {"prompt": "Say <b>hi</b>", "model": "profile:tc",
                                                           "budget": "0"})))
        assert run.status == "finished", run.error
        [req] = srv.requests
    page = client.get(f"/runs/{run.public_id}/steps/0/tab/sent/").content.decode()
    assert KEY not in page and "<b>hi</b>" not in page
    assert "/v1/chat/completions" in page and "sent-problem" not in page
    body = json.loads(htmllib.unescape(re.search(r'<pre class="code sent-json" id="sent-json">(.*?)</pre>', page, re.S).group(1)))
    assert body == req.body                                   # exactly what the server received
    assert body["tools"][0]["function"]["name"] == "spell_suffix"
    shown = htmllib.unescape(page)
    assert system_prompt("tool-call")[:200] in shown          # the system prompt, as text
    assert "message 2: user" in shown and '(quine prompt "Say <b>hi</b>")' in shown
    # the page itself has the tab
    assert 'data-tab="sent"' in client.get(f"/runs/{run.public_id}/steps/0/").content.decode()


def test_a_local_model_says_nothing_went_over_the_wire(client):  # noqa: F811
    run = finish(run_from(client.post("/runs/start/", {"prompt": "P", "model": "hello"})))
    page = client.get(f"/runs/{run.public_id}/steps/0/tab/sent/").content.decode()
    assert 'id="sent-none"' in page and "is local" in page and "(quine prompt" in htmllib.unescape(page)
