"""The recorded request of a model call rebuilds to exactly the JSON body the server
received, for every provider, transport and streaming mode; it is small (the prefix and
system prompt are referenced, not copied) and never holds the key."""

from __future__ import annotations

import json

import pytest

from spellide.spell.api import rebuild_request
from spellide.spell.models.base import ModelRequest
from spellide.spell.models.sent import MissingText
from spellide.spell.prompts import system_prompt

from .conftest import FAKE_KEY, PREFIX
from .servers import Reply

LONG_PREFIX = PREFIX + " ".join(f'(def item{i} "a value long enough to matter {i}")' for i in range(40)) + " "

CASES = [("openai", "message"), ("openai", "tool-call"), ("openai", "prefill"),
         ("anthropic", "prefill"), ("anthropic", "tool-call"), ("ollama", "prefill"), ("ollama", "message")]


@pytest.mark.parametrize("provider, transport", CASES)
@pytest.mark.parametrize("streamed", [False, True])
def test_the_recorded_request_rebuilds_to_the_body_received(server, make, deltas, provider, transport, streamed):
    m = make(provider, transport, temperature=0.5, max_tokens=321)
    server.push(Reply(text="(def a 1) a", tool="(def a 1) a" if transport == "tool-call" else None, chunk=3))
    c = m.complete(deltas.request(LONG_PREFIX) if streamed else ModelRequest(LONG_PREFIX))
    [got] = server.requests
    rec = c.raw["request"]
    assert rec["endpoint"].endswith(got.path)
    body = rebuild_request(rec, {"prefix": LONG_PREFIX, "system": system_prompt(transport)})
    assert body == got.body
    text = json.dumps(rec)
    assert FAKE_KEY not in text
    assert len(text) < len(LONG_PREFIX) / 2          # the prefix is referenced, not copied
    assert rec["texts"]["prefix"]["chars"] == len(LONG_PREFIX)


def test_a_different_prefix_or_prompt_is_refused_not_shown_as_sent(server, make):
    m = make("openai", "message")
    server.push(Reply(text="(def a 1) a"))
    rec = m.complete(ModelRequest(LONG_PREFIX)).raw["request"]
    with pytest.raises(MissingText) as e:
        rebuild_request(rec, {"prefix": LONG_PREFIX + " ", "system": system_prompt("message")})
    assert e.value.name == "prefix"
    with pytest.raises(MissingText) as e:
        rebuild_request(rec, {"prefix": LONG_PREFIX, "system": None})
    assert e.value.name == "system"
