"""Faults, through every provider and the real local server: 429 + Retry-After, 5xx, dropped
connections, stalled streams, empty/truncated answers, missing tool calls, malformed JSON,
exhausted retries, and API-key hygiene (never in errors, raw summaries or logs)."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import time
import traceback

import pytest

from spellide.spell.models.base import ModelError, ModelRequest
from spellide.spell.models.profiles import get_model
from spellide.spell.models.retry import RetryPolicy, parse_retry_after

from .conftest import KEY_ENV, PREFIX, SleepRecorder
from .servers import Reply

TARGETS = [("openai", "message"), ("openai", "tool-call"), ("openai", "prefill"),
           ("anthropic", "prefill"), ("anthropic", "tool-call"), ("ollama", "prefill"),
           ("ollama", "message")]
STREAM_TARGETS = [("openai", "message"), ("openai", "tool-call"), ("anthropic", "prefill"),
                  ("anthropic", "tool-call"), ("ollama", "prefill")]
GOOD = "(def ok 1) ok"


def ids(targets):
    return [f"{p}-{t}" for p, t in targets]


def good(transport: str, text: str = GOOD, **kw) -> Reply:
    return Reply(tool=text, **kw) if transport == "tool-call" else Reply(text=text, **kw)


def user_text(provider: str, transport: str, body: dict) -> str:
    """What the model saw as the user's message (or the raw prompt for raw prefill)."""
    if "prompt" in body:
        return body["prompt"]
    msgs = body["messages"]
    user = [m for m in msgs if m["role"] == "user"][-1]["content"]
    if isinstance(user, list):
        return "".join(b.get("text", "") for b in user)
    return user


# --- 429 / Retry-After ---------------------------------------------------------------------------

@pytest.mark.parametrize("provider, transport", TARGETS, ids=ids(TARGETS))
def test_429_retry_after_is_honoured(server, make, sleeper, provider, transport):
    m = make(provider, transport)
    server.push(Reply(status=429, headers={"Retry-After": "2"}, error_message="slow down"),
                good(transport))
    assert m.complete(ModelRequest(PREFIX)).text == GOOD
    assert sleeper.waits == [pytest.approx(2.0)]
    assert len(server.requests) == 2


def test_retry_after_http_date_and_ms(server, make, sleeper):
    m = make("openai", "message")
    when = email.utils.formatdate(time.time() + 4, usegmt=True)
    server.push(Reply(status=429, headers={"Retry-After": when}),
                Reply(status=503, headers={"retry-after-ms": "250"}), good("message"))
    assert m.complete(ModelRequest(PREFIX)).text == GOOD
    assert 2.5 <= sleeper.waits[0] <= 4.5  # HTTP dates have 1 s resolution
    assert sleeper.waits[1] == pytest.approx(0.25)


def test_retry_after_is_capped(server, make, sleeper):
    m = make("anthropic", "prefill", retry_after_max=5.0)
    server.push(Reply(status=429, headers={"Retry-After": "3600"}), good("prefill"))
    m.complete(ModelRequest(PREFIX))
    assert sleeper.waits == [5.0]


def test_retry_after_real_wait(server, fake_key):
    """With the default sleep, the second request really arrives Retry-After seconds later."""
    m = get_model("openai:fake-model@message", profiles={}, base_url=server.openai_url,
                  api_key_env=KEY_ENV, max_retries=2)
    server.push(Reply(status=429, headers={"Retry-After": "1"}), good("message"))
    m.complete(ModelRequest(PREFIX))
    gap = server.requests[1].time - server.requests[0].time
    assert 0.95 <= gap < 3.0


def test_connect_timeout_is_a_connection_problem():
    import httpx2
    import openai

    from spellide.spell.models.retry import _is_connect_timeout
    req = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    wrapped = openai.APITimeoutError(request=req)
    wrapped.__cause__ = httpx2.ConnectTimeout("connect timed out")
    assert _is_connect_timeout(wrapped)
    wrapped.__cause__ = httpx2.ReadTimeout("read timed out")
    assert not _is_connect_timeout(wrapped)


def test_parse_retry_after_unit():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None
    now = time.time()
    assert parse_retry_after({"retry-after": email.utils.formatdate(now + 30, usegmt=True)},
                             now=now) == pytest.approx(30, abs=1.0)


# --- 5xx, backoff, exhaustion --------------------------------------------------------------------

@pytest.mark.parametrize("provider, transport", TARGETS, ids=ids(TARGETS))
def test_500_then_success(server, make, sleeper, provider, transport):
    m = make(provider, transport, backoff_base=0.2, backoff_max=10)
    server.push(Reply(status=500, error_message="internal"), good(transport))
    assert m.complete(ModelRequest(PREFIX)).text == GOOD
    assert len(sleeper.waits) == 1 and 0 <= sleeper.waits[0] <= 0.2


def test_backoff_is_exponential_with_full_jitter_and_bounded():
    p = RetryPolicy(max_retries=6, backoff_base=0.5, backoff_max=3.0, random=lambda: 1.0)
    assert [p.delay(i, None) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    p.random = lambda: 0.25
    assert p.delay(2, None) == 0.5
    assert p.delay(0, 12.0) == 12.0 and RetryPolicy(retry_after_max=5).delay(0, 12.0) == 5.0


def test_backoff_schedule_through_a_provider(server, make, sleeper):
    m = make("openai", "tool-call", backoff_base=0.1, backoff_max=0.3, max_retries=4)
    m.policy.random = lambda: 1.0
    server.push(*[Reply(status=502)] * 4, good("tool-call"))
    assert m.complete(ModelRequest(PREFIX)).text == GOOD
    assert sleeper.waits == pytest.approx([0.1, 0.2, 0.3, 0.3])


@pytest.mark.parametrize("provider, transport", [("openai", "message"), ("anthropic", "tool-call"),
                                                 ("ollama", "prefill")])
def test_retries_exhausted(server, make, sleeper, provider, transport):
    m = make(provider, transport, max_retries=2)
    server.push(*[Reply(status=503, error_message="upstream unavailable")] * 5)
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    err = ei.value
    assert err.retryable is True and err.status == 503
    assert "gave up after 3 attempts" in err.message and "upstream unavailable" in err.message
    assert len(server.requests) == 3 and len(sleeper.waits) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(server, make, sleeper, status):
    m = make("openai", "message")
    server.push(Reply(status=status, error_message="nope"))
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert ei.value.status == status and ei.value.retryable is False
    assert len(server.requests) == 1 and sleeper.waits == []


def test_connection_refused_is_retried_then_reported(fake_key, sleeper):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = get_model("openai:fake-model@message", profiles={}, base_url=f"http://127.0.0.1:{port}/v1",
                  api_key_env=KEY_ENV, max_retries=2, backoff_base=0.01, sleep=sleeper)
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert ei.value.retryable is True and ei.value.status is None
    assert "connection error" in ei.value.message and len(sleeper.waits) == 2


# --- dropped connections -------------------------------------------------------------------------

@pytest.mark.parametrize("provider, transport", TARGETS, ids=ids(TARGETS))
def test_dropped_before_response(server, make, sleeper, provider, transport):
    m = make(provider, transport)
    server.push(Reply(drop_after=0), good(transport))
    assert m.complete(ModelRequest(PREFIX)).text == GOOD
    assert len(server.requests) == 2 and len(sleeper.waits) == 1


@pytest.mark.parametrize("provider, transport", [("openai", "message"), ("anthropic", "prefill"),
                                                 ("ollama", "message")])
def test_dropped_mid_body(server, make, provider, transport):
    m = make(provider, transport)
    server.push(good(transport, drop_after=1), good(transport))
    assert m.complete(ModelRequest(PREFIX)).text == GOOD
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider, transport", STREAM_TARGETS, ids=ids(STREAM_TARGETS))
def test_dropped_mid_stream_restarts_the_deltas(server, make, deltas, provider, transport):
    m = make(provider, transport)
    long = "(def words [\"alpha\" \"beta\" \"gamma\" \"delta\"]) (count words)"
    server.push(good(transport, long, drop_after=6, chunk=4), good(transport, long, chunk=4))
    c = m.complete(deltas.request())
    assert c.text == long
    assert len(deltas.restarts) == 1 and "retrying" in deltas.restarts[0]
    assert deltas.text == long  # the deltas since the restart are the whole answer
    assert len(server.requests) == 2 and c.raw["stream_restarts"] == 1


# --- timeouts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("provider, transport", [("openai", "message"), ("anthropic", "tool-call"),
                                                 ("ollama", "prefill")])
def test_stalled_stream_times_out(server, make, deltas, provider, transport):
    m = make(provider, transport, timeout=0.4)
    server.push(good(transport, "(def partial 1) (+ partial 2)", chunk=3, stall=3.0, stall_after=4))
    t0 = time.monotonic()
    with pytest.raises(ModelError) as ei:
        m.complete(deltas.request())
    elapsed = time.monotonic() - t0
    err = ei.value
    assert 0.35 <= elapsed < 2.0
    assert err.retryable is True and "timed out" in err.message and "0.4s" in err.message
    assert len(server.requests) == 1  # a timeout is not retried automatically
    assert err.received  # what arrived before the stall


def test_stalled_response_times_out(server, make):
    m = make("openai", "tool-call", timeout=0.3)
    server.push(good("tool-call", stall=3.0))
    t0 = time.monotonic()
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert 0.25 <= time.monotonic() - t0 < 2.0
    assert ei.value.retryable and "timed out" in ei.value.message


def test_total_timeout_caps_a_trickling_stream(server, make, deltas):
    m = make("anthropic", "prefill", timeout=5.0, total_timeout=0.3)
    server.push(good("prefill", GOOD * 5, chunk=2, delay_between=0.03))
    t0 = time.monotonic()
    with pytest.raises(ModelError) as ei:
        m.complete(deltas.request())
    assert time.monotonic() - t0 < 1.5
    assert "total_timeout" in ei.value.message


# --- empty / truncated / missing tool call -------------------------------------------------------

NOTE = ";; system: retrying — previous response"


@pytest.mark.parametrize("provider, transport", TARGETS, ids=ids(TARGETS))
def test_empty_answer_is_retried_once_with_a_note(server, make, provider, transport):
    m = make(provider, transport, max_tokens=4096)
    server.push(good(transport, ""), good(transport))
    c = m.complete(ModelRequest(PREFIX))
    assert c.text == GOOD
    first, second = (user_text(provider, transport, r.body) for r in server.requests)
    assert NOTE not in first
    raw_prefill = transport == "prefill" and provider in ("openai", "ollama")
    if raw_prefill:
        assert second == first == PREFIX  # no message channel: same prompt, no note
    else:
        assert (f"{NOTE} was empty, max output tokens 4096") in second
    assert c.usage.output_tokens == 20  # both attempts are paid for
    assert [a["problem"] for a in c.raw["attempts"]] == ["empty", None]


@pytest.mark.parametrize("provider, transport", [("openai", "message"), ("anthropic", "prefill"),
                                                 ("ollama", "prefill")])
def test_empty_twice_is_an_error(server, make, provider, transport):
    m = make(provider, transport)
    server.push(good(transport, "   "), good(transport, ""))
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert ei.value.retryable and "empty" in ei.value.message
    assert len(server.requests) == 2
    assert ei.value.usage.output_tokens == 20


@pytest.mark.parametrize("provider, transport", [("openai", "message"), ("openai", "tool-call"),
                                                 ("anthropic", "prefill"), ("ollama", "message")])
def test_truncated_answer_is_retried_with_a_note(server, make, provider, transport):
    m = make(provider, transport, max_tokens=64)
    server.push(good(transport, "(def long-thing [1 2 3", finish="length"), good(transport))
    c = m.complete(ModelRequest(PREFIX))
    assert c.text == GOOD and c.raw["truncated"] is False
    assert f"{NOTE} was truncated, max output tokens 64" in user_text(provider, transport,
                                                                       server.requests[1].body)


def test_truncated_twice_returns_the_text(server, make):
    m = make("openai", "message")
    server.push(good("message", "(def a [1 2", finish="length"),
                good("message", "(def a [1", finish="length"))
    c = m.complete(ModelRequest(PREFIX))
    assert c.text == "(def a [1" and c.raw["truncated"] is True


def test_truncated_streamed_answer_restarts(server, make, deltas):
    m = make("openai", "tool-call")
    args = json.dumps({"suffix": "(def a [1 2 3 4 5 6"})[:-8]  # cut mid-string
    server.push(Reply(tool_args=args, finish="length", chunk=3), good("tool-call"))
    c = m.complete(deltas.request())
    assert c.text == GOOD == deltas.text
    assert len(deltas.restarts) == 1 and "".join(deltas.all).startswith("(def a [1 2")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_missing_tool_call_is_retried_once(server, make, deltas, provider, stream):
    m = make(provider, "tool-call")
    server.push(Reply(text="I think the answer is (+ 1 2)"), good("tool-call"))
    c = m.complete(deltas.request() if stream else ModelRequest(PREFIX))
    assert c.text == GOOD
    assert f"{NOTE} had no spell_suffix tool call" in user_text(provider, "tool-call",
                                                                 server.requests[1].body)
    if stream:
        assert deltas.text == GOOD


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_missing_tool_call_twice_is_an_error(server, make, provider):
    m = make(provider, "tool-call")
    server.push(Reply(text="no tool"), Reply(tool="x", tool_name="other_tool"))
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert ei.value.retryable and "did not call the spell_suffix tool" in ei.value.message
    assert len(server.requests) == 2


def test_more_than_one_tool_call_is_retried(server, make):
    m = make("openai", "tool-call")
    server.push(Reply(tool="(a)", tool_count=2), good("tool-call"))
    assert m.complete(ModelRequest(PREFIX)).text == GOOD
    assert "2 spell_suffix tool calls (exactly one is required)" in user_text(
        "openai", "tool-call", server.requests[1].body)


# --- malformed responses -------------------------------------------------------------------------

@pytest.mark.parametrize("provider, transport", TARGETS, ids=ids(TARGETS))
def test_malformed_json_body(server, make, provider, transport):
    m = make(provider, transport)
    bad = '{"choices": [{"message": {"content": "(def x'
    server.push(Reply(malformed=bad))
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    err = ei.value
    assert err.received == bad and "malformed JSON" in err.message and err.retryable
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider, transport", [("openai", "message"), ("anthropic", "prefill"),
                                                 ("ollama", "message")])
def test_malformed_json_in_stream(server, make, deltas, provider, transport):
    m = make(provider, transport)
    server.push(good(transport, malformed="{not json at all"))
    with pytest.raises(ModelError) as ei:
        m.complete(deltas.request())
    assert "{not json at all" in (ei.value.received or "")


def test_wrong_shape_is_malformed(server, make):
    m = make("openai", "message")
    server.push(Reply(malformed='{"object": "chat.completion", "choices": []}'))
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert "no choices" in ei.value.message and '"choices": []' in ei.value.received


def test_malformed_tool_arguments(server, make):
    m = make("openai", "tool-call")
    server.push(Reply(tool_args='{"suffix": "(def x 1)" oops}'))
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert ei.value.received == '{"suffix": "(def x 1)" oops}'


def test_received_is_truncated(server, make):
    m = make("openai", "message")
    server.push(Reply(malformed="{" + "x" * 50_000))
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert len(ei.value.received) < 5000 and "50001 chars received" in ei.value.received


def test_error_object_inside_openai_stream_is_retried(server, make, deltas, sleeper):
    m = make("openai", "message")
    server.push(good("message", stream_error="The server had an error"), good("message"))
    assert m.complete(deltas.request()).text == GOOD == deltas.text
    assert len(sleeper.waits) == 1


# --- API key hygiene ----------------------------------------------------------------------------

def _all_text(err: BaseException) -> str:
    return "\n".join([str(err), repr(err), str(getattr(err, "received", "")),
                      "".join(traceback.format_exception(err))])


@pytest.mark.parametrize("provider, transport", [("openai", "message"), ("anthropic", "prefill"),
                                                 ("ollama", "message")])
def test_key_never_in_errors_raw_or_logs(server, make, fake_key, caplog, capfd, provider, transport):
    caplog.set_level(logging.DEBUG)  # every logger, SDKs and HTTP stacks included
    m = make(provider, transport, max_retries=1)
    echo = f"Incorrect API key provided: {fake_key}"
    server.push(Reply(status=500, error_message=echo), good(transport))           # retried, logged
    c = m.complete(ModelRequest(PREFIX))
    server.push(Reply(status=401, error_message=echo))                            # fatal
    with pytest.raises(ModelError) as e1:
        m.complete(ModelRequest(PREFIX))
    server.push(Reply(malformed='{"oops": "' + fake_key))                         # malformed
    with pytest.raises(ModelError) as e2:
        m.complete(ModelRequest(PREFIX))
    # The key was really used ...
    sent = server.requests[0].headers
    assert fake_key in (sent.get("authorization", "") + sent.get("x-api-key", ""))
    # ... and appears nowhere else.
    for err in (e1.value, e2.value):
        assert fake_key not in _all_text(err)
    assert "[redacted]" in e1.value.message and "[redacted]" in e2.value.received
    assert fake_key not in json.dumps(c.raw) and fake_key not in json.dumps(m.cache_settings())
    assert fake_key not in caplog.text
    out, errout = capfd.readouterr()
    assert fake_key not in out and fake_key not in errout
    assert any("retry 1/1" in r.getMessage() for r in caplog.records)


def test_missing_key_env_is_a_clear_error(server, make, monkeypatch):
    m = make("openai", "message", api_key_env="SPELLIDE_TEST_UNSET_KEY")
    monkeypatch.delenv("SPELLIDE_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ModelError) as ei:
        m.complete(ModelRequest(PREFIX))
    assert "SPELLIDE_TEST_UNSET_KEY" in ei.value.message and not ei.value.retryable
    assert server.requests == []


def test_sleep_recorder_is_what_tests_use():
    r = SleepRecorder()
    r(0.5)
    assert r.waits == [0.5]
