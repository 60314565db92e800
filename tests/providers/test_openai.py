"""OpenAI-compatible provider against a real local server: message, tool-call and prefill
(/v1/completions) transports, leaf-llm text calls, streaming, usage and cost."""

from __future__ import annotations

import json

import pytest

from spellide.spell.models.base import ModelRequest
from spellide.spell.prompts import PROMPT_VERSION, system_prompt

from .conftest import FAKE_KEY, PREFIX
from .servers import Reply


def test_message_request_shape_and_answer(server, make):
    m = make("openai", "message", temperature=0.25, max_tokens=777)
    server.push(Reply(text="(def a 2) (+ a 3)"))
    c = m.complete(ModelRequest(PREFIX))
    assert c.text == "(def a 2) (+ a 3)"
    assert c.transport == "message" and c.model == "fake-model"
    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {FAKE_KEY}"
    body = req.body
    assert body["model"] == "fake-model"
    assert body["messages"] == [{"role": "system", "content": system_prompt("message")},
                                {"role": "user", "content": PREFIX}]
    assert body["max_tokens"] == 777 and body["temperature"] == 0.25
    assert "tools" not in body and not body.get("stream")


def test_message_strips_fences_and_prefix_echo(server, make):
    m = make("openai", "message")
    server.push(Reply(text="```clojure\n" + PREFIX + "(def a 1) a\n```\nHope this helps!"))
    assert m.complete(ModelRequest(PREFIX)).text == "(def a 1) a"


def test_message_streaming_deltas_in_order(server, make, deltas):
    m = make("openai", "message")
    text = "(def xs (range 10)) (think \"sum them\") (reduce + xs)"
    server.push(Reply(text=text, chunk=4))
    c = m.complete(deltas.request())
    assert c.text == text
    assert deltas.text == text and len(deltas.chunks) > 5
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (c.usage.input_tokens, c.usage.cached_input_tokens, c.usage.output_tokens) == (100, 20, 10)


def test_message_streaming_never_shows_fence_or_echo(server, make, deltas):
    m = make("openai", "message")
    server.push(Reply(text="```lisp\n" + PREFIX + "(def a 1)\n'(!extend)\n```", chunk=3))
    c = m.complete(deltas.request())
    assert c.text == "(def a 1)\n'(!extend)"
    assert deltas.text == c.text and deltas.restarts == []
    assert not any("`" in d for d in deltas.all)
    assert "quine" not in "".join(deltas.all)


def test_tool_call_request_and_answer(server, make):
    m = make("openai", "tool-call")
    server.push(Reply(tool='(def s "a \\"quoted\\" word") s'))
    c = m.complete(ModelRequest(PREFIX))
    assert c.text == '(def s "a \\"quoted\\" word") s' and c.transport == "tool-call"
    body = server.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": system_prompt("tool-call")}
    [tool] = body["tools"]
    assert tool["function"]["name"] == "spell_suffix"
    assert tool["function"]["parameters"]["properties"]["suffix"]["type"] == "string"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "spell_suffix"}}


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_tool_call_streams_decoded_suffix_incrementally(server, make, deltas, chunk):
    m = make("openai", "tool-call")
    suffix = '(def s "tab\\there \u00e9 \U0001F600 \\\\ end")\n\'(!call-now n (count s))'
    args = json.dumps({"suffix": suffix})  # ensure_ascii: \u escapes and a surrogate pair
    assert "\\ud83d" in args
    server.push(Reply(tool_args=args, chunk=chunk))
    c = m.complete(deltas.request())
    assert c.text == suffix
    assert deltas.text == suffix and deltas.restarts == []
    assert len(deltas.chunks) >= len(args) // (chunk * 4)  # incremental, not one final delta


def test_tool_call_suffix_is_cleaned(server, make):
    m = make("openai", "tool-call")
    server.push(Reply(tool="```\n(def z 3) z\n```"))
    assert m.complete(ModelRequest(PREFIX)).text == "(def z 3) z"


def test_prefill_uses_completions_endpoint(server, make, deltas):
    m = make("openai", "prefill")
    server.push(Reply(text=" (def a 1) a"), Reply(text=" (def b 2) b", chunk=2))
    c = m.complete(ModelRequest(PREFIX))
    assert c.text == " (def a 1) a"  # raw continuation, untouched
    req = server.requests[0]
    assert req.path == "/v1/completions"
    assert req.body["prompt"] == PREFIX and "messages" not in req.body
    c2 = m.complete(deltas.request())
    assert c2.text == " (def b 2) b" == deltas.text
    assert server.requests[1].body["stream"] is True


def test_prefill_system_in_prompt(server, make):
    m = make("openai", "prefill", system_in_prompt=True)
    m.complete(ModelRequest(PREFIX))
    prompt = server.requests[0].body["prompt"]
    assert prompt.startswith(system_prompt("prefill").rstrip()) and prompt.endswith("\n\n" + PREFIX)


@pytest.mark.parametrize("transport", ["message", "tool-call", "prefill"])
def test_leaf_llm_text_is_plain_chat(server, make, transport):
    m = make("openai", transport)
    server.push(Reply(text="Paris is the capital of France."))
    c = m.complete(ModelRequest("What is the capital of France?", kind="text"))
    assert c.text == "Paris is the capital of France." and c.transport == "text"
    req = server.requests[0]
    assert req.path == "/v1/chat/completions"
    assert req.body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert "tools" not in req.body


def test_leaf_llm_streams_too(server, make, deltas):
    m = make("openai", "tool-call")
    server.push(Reply(text="```not cleaned``` in text mode", chunk=2))
    c = m.complete(deltas.request("Say something", kind="text"))
    assert c.text == "```not cleaned``` in text mode" == deltas.text


def test_usage_and_cost(server, make):
    m = make("openai", "message", price_input=2.0, price_cached_input=0.5, price_output=8.0)
    server.push(Reply(usage=(1_000_000, 400_000, 250_000)))
    u = m.complete(ModelRequest(PREFIX)).usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (600_000, 400_000, 250_000)
    assert u.cost == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.25 * 8.0)


def test_reasoning_and_max_completion_tokens_and_extra_body(server, make):
    m = make("openai", "tool-call", reasoning={"effort": "high"}, max_tokens_field="max_completion_tokens",
             max_tokens=900, extra_body={"top_p": 0.5, "seed": 7})
    server.push(Reply(tool="1"))
    m.complete(ModelRequest(PREFIX))
    body = server.requests[0].body
    assert body["reasoning_effort"] == "high" and body["max_completion_tokens"] == 900
    assert "max_tokens" not in body and body["top_p"] == 0.5 and body["seed"] == 7


def test_request_system_override(server, make):
    m = make("openai", "message")
    m.complete(ModelRequest(PREFIX, system="custom system"))
    assert server.requests[0].body["messages"][0] == {"role": "system", "content": "custom system"}


def test_cache_settings(make, fake_key):
    m = make("openai", "message", temperature=0.1, reasoning={"effort": "low"})
    s = m.cache_settings()
    assert s["provider"] == "openai" and s["model"] == "fake-model" and s["transport"] == "message"
    assert s["temperature"] == 0.1 and s["max_tokens"] == 8192 and s["reasoning"] == {"effort": "low"}
    assert s["prompt_version"] == PROMPT_VERSION and len(s["prompt_digest"]) == 12
    assert s["base_url"].startswith("http://127.0.0.1:")
    assert fake_key not in json.dumps(s)
    assert make("openai", "message", temperature=0.2).cache_settings() != s
    assert make("openai", "tool-call", temperature=0.1, reasoning={"effort": "low"}).cache_settings() != s
    # Things that do not change the answer are not in the key.
    assert make("openai", "message", temperature=0.1, reasoning={"effort": "low"},
                price_input=9.0, timeout=1.0, max_retries=0).cache_settings() == s


def test_raw_summary_is_small_and_keyless(server, make, fake_key):
    m = make("openai", "tool-call")
    server.push(Reply(tool="(+ 1 2)"))
    c = m.complete(ModelRequest(PREFIX))
    raw = json.dumps(c.raw)
    assert fake_key not in raw and c.raw["attempts"][0]["finish"] == "tool_calls"
    assert c.raw["model"] == "fake-model" and c.raw["transport"] == "tool-call"
