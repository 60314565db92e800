"""Ollama provider against a real local server: raw /api/generate prefill, /api/chat message,
leaf-llm, NDJSON streaming, usage, options, errors in Ollama's format."""

from __future__ import annotations

import pytest

from spellide.spell.models.base import ModelError, ModelRequest
from spellide.spell.prompts import system_prompt

from .conftest import PREFIX
from .servers import Reply


def test_prefill_is_raw_generate(server, make):
    m = make("ollama", "prefill", api_key_env=None, max_tokens=321, temperature=0.1,
             extra_body={"num_ctx": 8192})
    server.push(Reply(text=" (def a 1) a"))
    c = m.complete(ModelRequest(PREFIX))
    assert c.text == " (def a 1) a" and c.transport == "prefill" and c.model == "fake-model"
    [req] = server.requests
    assert req.path == "/api/generate"
    b = req.body
    assert b["raw"] is True and b["prompt"] == PREFIX and b["stream"] is False
    assert b["model"] == "fake-model"
    assert b["options"] == {"num_predict": 321, "temperature": 0.1, "num_ctx": 8192}
    assert "authorization" not in req.headers


def test_prefill_streaming_ndjson(server, make, deltas):
    m = make("ollama", "prefill", api_key_env=None)
    text = ' (def words ["a" "b"]) (count words)'
    server.push(Reply(text=text, chunk=3))
    c = m.complete(deltas.request())
    assert c.text == text == deltas.text and len(deltas.chunks) > 5
    assert server.requests[0].body["stream"] is True


def test_prefill_system_in_prompt(server, make):
    m = make("ollama", "prefill", api_key_env=None, system_in_prompt=True)
    m.complete(ModelRequest(PREFIX))
    prompt = server.requests[0].body["prompt"]
    assert prompt.startswith("You are an agent") and prompt.endswith(PREFIX)


def test_chat_message_transport(server, make, deltas):
    m = make("ollama", "message", api_key_env=None, reasoning={"think": True})
    server.push(Reply(text="```clojure\n(def a 1) a\n```"), Reply(text=PREFIX + "(def b 2) b", chunk=4))
    assert m.complete(ModelRequest(PREFIX)).text == "(def a 1) a"
    b = server.requests[0].body
    assert server.requests[0].path == "/api/chat"
    assert b["messages"] == [{"role": "system", "content": system_prompt("message")},
                             {"role": "user", "content": PREFIX}]
    assert b["think"] is True
    c = m.complete(deltas.request())
    assert c.text == "(def b 2) b" == deltas.text


def test_leaf_llm_uses_chat_without_system(server, make):
    m = make("ollama", "prefill", api_key_env=None)
    server.push(Reply(text="Blue."))
    c = m.complete(ModelRequest("What colour is the sky?", kind="text"))
    assert c.text == "Blue." and c.transport == "text"
    assert server.requests[0].path == "/api/chat"
    assert server.requests[0].body["messages"] == [{"role": "user", "content": "What colour is the sky?"}]


def test_usage_and_cost(server, make):
    m = make("ollama", "prefill", api_key_env=None, price_input=1.0, price_output=2.0)
    server.push(Reply(usage=(3000, 0, 500)))
    u = m.complete(ModelRequest(PREFIX)).usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (3000, 0, 500)
    assert u.cost == pytest.approx((3000 * 1.0 + 500 * 2.0) / 1e6)


def test_api_key_is_sent_as_bearer_when_configured(server, make, fake_key):
    m = make("ollama", "message")
    m.complete(ModelRequest(PREFIX))
    assert server.requests[0].headers["authorization"] == f"Bearer {fake_key}"


def test_model_not_found_is_not_retried(server, make):
    m = make("ollama", "prefill", api_key_env=None)
    server.push(Reply(status=404, error_message="model 'fake-model' not found, try pulling it first"))
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert ei.value.status == 404 and not ei.value.retryable
    assert "try pulling it first" in ei.value.message
    assert len(server.requests) == 1


def test_500_then_success_and_retry_after(server, make, sleeper):
    m = make("ollama", "message", api_key_env=None)
    server.push(Reply(status=500, error_message="llama runner crashed"),
                Reply(status=429, headers={"Retry-After": "3"}),
                Reply(text="(def ok true) ok"))
    assert m.complete(ModelRequest(PREFIX)).text == "(def ok true) ok"
    assert len(sleeper.waits) == 2 and sleeper.waits[1] == pytest.approx(3.0)


def test_error_inside_stream_is_retried(server, make, deltas, sleeper):
    m = make("ollama", "prefill", api_key_env=None)
    server.push(Reply(text=" (def a 1)", stream_error="out of memory"), Reply(text=" 42"))
    c = m.complete(deltas.request())
    assert c.text == " 42" == deltas.text
    assert len(server.requests) == 2
