"""Anthropic provider against a real local Messages API server: prefill (incl. the trailing
whitespace rule), tool-call, message, leaf-llm, streaming, usage with cache reads, prompt
caching blocks, extended thinking."""

from __future__ import annotations

import json

import pytest

from spellide.spell.models.base import ModelRequest
from spellide.spell.models.cleanup import AnthropicPrefillJoiner
from spellide.spell.prompts import system_prompt

from .conftest import FAKE_KEY, PREFIX
from .servers import Reply


def test_prefill_request_shape(server, make):
    m = make("anthropic", "prefill", max_tokens=1234, temperature=0.4)  # temperature: raw field
    server.push(Reply(text=" (def a 1) a"))
    c = m.complete(ModelRequest(PREFIX))
    [req] = server.requests
    assert req.path == "/v1/messages"
    # The SDK sends the key as x-api-key (older) or a bearer token (current).
    assert FAKE_KEY in (req.headers.get("x-api-key"), req.headers.get("authorization", "").removeprefix("Bearer "))
    assert "anthropic-version" in req.headers
    body = req.body
    assert body["system"] == system_prompt("prefill")
    assert body["max_tokens"] == 1234 and body["temperature"] == 0.4
    assert body["messages"][0] == {"role": "user", "content": "Continue this Spell program."}
    assistant = body["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == [{"type": "text", "text": PREFIX.rstrip()}]
    assert c.text == "(def a 1) a" and c.transport == "prefill"
    assert PREFIX + c.text == PREFIX.rstrip() + " (def a 1) a"


@pytest.mark.parametrize("reply, expected", [
    (" (def a 1) a", "(def a 1) a"),          # the model re-types the stripped space
    ("\n  (def a 1) a", "(def a 1) a"),       # or other whitespace
    ("(def a 1) a", "(def a 1) a"),           # or none
])
def test_prefill_trailing_whitespace_join(server, make, deltas, reply, expected):
    m = make("anthropic", "prefill")
    server.push(Reply(text=reply), Reply(text=reply, chunk=1))
    assert m.complete(ModelRequest(PREFIX)).text == expected
    c = m.complete(deltas.request())
    assert c.text == expected == deltas.text
    assert not deltas.chunks[0].isspace()


def test_prefill_without_trailing_whitespace_keeps_reply_verbatim(server, make):
    m = make("anthropic", "prefill")
    prefix = '(quine completion (eval (do (def s "abc'
    server.push(Reply(text='def") s'))
    c = m.complete(ModelRequest(prefix))
    assert c.text == 'def") s'
    assert server.requests[0].body["messages"][1]["content"][0]["text"] == prefix


def test_prefill_joiner_unit():
    j = AnthropicPrefillJoiner("(do ")
    assert [j.feed(" "), j.feed(" (x"), j.feed(" y")] == ["", "(x", " y"]
    assert AnthropicPrefillJoiner("(do").join(" x") == " x"


def test_tool_call_request_and_streaming(server, make, deltas):
    m = make("anthropic", "tool-call")
    suffix = '(def msg "line1\\nline2 \u00fc")\n\'(!print msg)'
    server.push(Reply(tool=suffix), Reply(tool=suffix, chunk=3))
    assert m.complete(ModelRequest(PREFIX)).text == suffix
    body = server.requests[0].body
    assert body["system"] == system_prompt("tool-call")
    assert body["tools"][0]["name"] == "spell_suffix"
    assert body["tools"][0]["input_schema"]["required"] == ["suffix"]
    assert body["tool_choice"] == {"type": "tool", "name": "spell_suffix"}
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": PREFIX}]}]
    c = m.complete(deltas.request())
    assert c.text == suffix == deltas.text and len(deltas.chunks) > 5


def test_message_transport(server, make, deltas):
    m = make("anthropic", "message")
    server.push(Reply(text="```\n(def q 1) q\n```", chunk=2))
    c = m.complete(deltas.request())
    assert c.text == "(def q 1) q" == deltas.text


def test_leaf_llm_text(server, make):
    m = make("anthropic", "prefill")
    server.push(Reply(text="42 is the answer."))
    c = m.complete(ModelRequest("Answer briefly: what is 6*7?", kind="text"))
    assert c.text == "42 is the answer." and c.transport == "text"
    body = server.requests[0].body
    assert "system" not in body and "tools" not in body
    assert body["messages"] == [{"role": "user", "content": "Answer briefly: what is 6*7?"}]


@pytest.mark.parametrize("stream", [False, True])
def test_usage_with_cache_reads_and_cost(server, make, deltas, stream):
    m = make("anthropic", "prefill", price_input=3.0, price_cached_input=0.3, price_output=15.0)
    server.push(Reply(usage=(2_000_000, 1_500_000, 100_000)))
    c = m.complete(deltas.request() if stream else ModelRequest(PREFIX))
    u = c.usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (500_000, 1_500_000, 100_000)
    assert u.cost == pytest.approx(0.5 * 3.0 + 1.5 * 0.3 + 0.1 * 15.0)


def test_prompt_cache_reuses_block_split(server, make):
    m = make("anthropic", "prefill", prompt_cache=True)
    p1 = PREFIX + "(def a 1) (quote (!extend)) "
    p2 = p1 + "(def b 2) (quote (!extend)) "
    m.complete(ModelRequest(p1))
    m.complete(ModelRequest(p2))
    b1, b2 = server.requests[0].body, server.requests[1].body
    assert b1["system"][0]["cache_control"] == {"type": "ephemeral"}
    blocks1 = b1["messages"][1]["content"]
    blocks2 = b2["messages"][1]["content"]
    assert [b["text"] for b in blocks1] == [p1.rstrip()]
    assert [b["text"] for b in blocks2] == [p1.rstrip(), p2.rstrip()[len(p1.rstrip()):]]
    assert "cache_control" in blocks2[-1] and "cache_control" not in blocks2[0]
    # An edited (non-extending) prefix starts over with one block.
    m.complete(ModelRequest(PREFIX + "(def c 3) "))
    assert len(server.requests[2].body["messages"][1]["content"]) == 1


def test_thinking_for_tool_call(server, make):
    m = make("anthropic", "tool-call", reasoning={"budget_tokens": 2048}, temperature=0.5)
    server.push(Reply(tool="(+ 1 1)"))
    assert m.complete(ModelRequest(PREFIX)).text == "(+ 1 1)"
    body = server.requests[0].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["tool_choice"] == {"type": "auto"} and "temperature" not in body


def test_error_body_message_is_reported(server, make):
    m = make("anthropic", "prefill")
    server.push(Reply(status=400, error_message="prompt is too long: 250000 tokens > 200000"))
    with pytest.raises(Exception) as ei:
        m.complete(ModelRequest(PREFIX))
    err = ei.value
    assert err.status == 400 and err.retryable is False
    assert "prompt is too long" in err.message and "invalid_request_error" in err.message
    assert len(server.requests) == 1


def test_overloaded_stream_event_is_retried(server, make, deltas, sleeper):
    m = make("anthropic", "prefill")
    server.push(Reply(text=" (def a 1) a", stream_error="Overloaded"), Reply(text=" (def b 2) b"))
    c = m.complete(deltas.request())
    assert c.text == "(def b 2) b" == deltas.text
    assert len(server.requests) == 2 and len(sleeper.waits) == 1


def test_529_overloaded_is_retried(server, make, sleeper):
    m = make("anthropic", "tool-call")
    server.push(Reply(status=529, error_message="Overloaded"), Reply(tool="7"))
    assert m.complete(ModelRequest(PREFIX)).text == "7"
    assert len(sleeper.waits) == 1


def test_raw_has_no_key(server, make, fake_key):
    server.push(Reply(tool="1"))
    c = make("anthropic", "tool-call").complete(ModelRequest(PREFIX))
    assert fake_key not in json.dumps(c.raw)
