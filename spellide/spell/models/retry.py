"""One retry policy and one call skeleton for every provider.

The SDKs each have their own retry loops with different rules; they are all configured with
``max_retries=0`` and the policy lives here, so that a 429 from OpenAI, Anthropic or Ollama is
handled the same way and tests can observe it (the backoff ``sleep`` is injectable).

Two kinds of retry:

* **transport** retries, for HTTP 408/409/429/5xx (incl. Anthropic's 529) and connection
  errors (refused, reset, dropped mid-response): bounded exponential backoff with full jitter
  (``uniform(0, min(backoff_max, backoff_base * 2**n))``), except that a ``Retry-After`` /
  ``retry-after-ms`` header is honoured exactly, capped at ``retry_after_max``. A read timeout is
  *not* retried automatically (a stalled server would otherwise hold the run for a multiple of
  the timeout); it raises a retryable ``ModelError`` at once.
* **content** retries, at most one per call: an empty answer, a truncated one (the output-token
  limit was hit), or a tool-call answer without exactly one ``spell_suffix`` call is asked again
  with a note appended to the user message (``;; system: retrying — ...``). Raw-prefill
  transports have no user message, so their retry carries no note.

``BaseProvider`` implements the Model protocol on top of a provider's single ``_attempt``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .sent import record_request
from .base import MESSAGE, PREFILL, TEXT, TOOL_CALL, Completion, ModelError, ModelRequest, Usage
from .cleanup import AnthropicPrefillJoiner, StreamCleaner, ToolArgsDecoder, clean_response
from .profiles import Profile

log = logging.getLogger("spellide.models")

TOOL_NAME = "spell_suffix"
CHARS_PER_TOKEN = 4   # the usual rule of thumb for English and code with current tokenizers
RECEIVED_MAX = 4000
TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


@dataclass
class RetryPolicy:
    """Bounded exponential backoff with full jitter; ``sleep`` and ``random`` are injectable
    so tests are fast and can assert the waits."""

    max_retries: int = 4
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    @classmethod
    def from_profile(cls, p: Profile, sleep: Optional[Callable[[float], None]] = None) -> "RetryPolicy":
        return cls(p.max_retries, p.backoff_base, p.backoff_max, p.retry_after_max,
                   sleep or time.sleep)

    def delay(self, retry_index: int, retry_after: Optional[float]) -> float:
        """Seconds to wait before retry number ``retry_index`` (0-based)."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.retry_after_max))
        window = min(self.backoff_max, self.backoff_base * (2 ** retry_index))
        return self.random() * window


def parse_retry_after(headers: Any, now: Optional[float] = None) -> Optional[float]:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``
    (delta-seconds or an HTTP date); None if absent or unreadable."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class CallFailure(Exception):
    """Internal: one attempt failed. ``kind`` decides what happens next:
    ``transient`` (retry with backoff), ``timeout`` (stop, retryable), ``malformed`` (stop,
    report what was received), ``fatal`` (stop, not retryable)."""

    def __init__(self, kind: str, message: str, *, status: Optional[int] = None,
                 retry_after: Optional[float] = None, received: Optional[str] = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.received = received


def clip(text: Optional[str], limit: int = RECEIVED_MAX) -> Optional[str]:
    if text is None:
        return None
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text)} chars received]"


def error_message_from_body(body: Any) -> Optional[str]:
    """The human message inside a provider error body: OpenAI ``{"error": {"message"}}``,
    Anthropic ``{"type": "error", "error": {"type", "message"}}``, Ollama ``{"error": "..."}``."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, TypeError):
            return body.decode("utf-8", "replace")[:300] if isinstance(body, bytes) else body[:300]
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("type")
            kind = err.get("type")
            if msg and kind and kind != msg:
                return f"{msg} ({kind})"
            return str(msg) if msg else None
        if isinstance(err, str):
            return err
    return None


def status_failure(status: int, headers: Any, message: Optional[str]) -> CallFailure:
    """Classify an HTTP error status."""
    kind = "transient" if status in TRANSIENT_STATUS or status >= 500 else "fatal"
    what = {429: "rate limited", 401: "authentication failed", 403: "permission denied",
            404: "not found (check base_url and model)", 400: "bad request",
            529: "overloaded"}.get(status, "server error" if status >= 500 else "request failed")
    text = f"HTTP {status} {what}" + (f": {message}" if message else "")
    return CallFailure(kind, text, status=status, retry_after=parse_retry_after(headers))


def transport_failure(exc: BaseException) -> Optional[CallFailure]:
    """Classify the transport-level exceptions of httpx/httpx2 (the SDKs' HTTP stacks), which
    can surface unwrapped from stream iteration, and JSON decoding errors."""
    mod = type(exc).__module__.split(".")[0]
    names = {c.__name__ for c in type(exc).__mro__}
    if mod in ("httpx", "httpx2", "httpcore"):
        if "TimeoutException" in names:
            return CallFailure("timeout", f"timed out ({type(exc).__name__})")
        if names & {"TransportError", "RemoteProtocolError", "NetworkError", "ProtocolError"}:
            return CallFailure("transient", f"connection error: {type(exc).__name__}: "
                                            f"{_short(str(exc))}")
    if isinstance(exc, json.JSONDecodeError):
        return CallFailure("malformed", f"malformed JSON in the response ({exc.msg} at "
                                        f"line {exc.lineno} column {exc.colno})",
                           received=clip(exc.doc))
    if isinstance(exc, (ConnectionError, TimeoutError)):
        if isinstance(exc, TimeoutError):
            return CallFailure("timeout", "timed out")
        return CallFailure("transient", f"connection error: {_short(str(exc))}")
    return None


def _is_connect_timeout(exc: BaseException) -> bool:
    """The SDKs wrap httpx's ConnectTimeout/ReadTimeout in one timeout class; the cause
    chain tells them apart."""
    seen = 0
    e: Optional[BaseException] = exc
    while e is not None and seen < 8:
        if type(e).__name__ in ("ConnectTimeout", "PoolTimeout"):
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def _short(s: str, n: int = 200) -> str:
    return s if len(s) <= n else s[:n] + "..."


@dataclass
class Attempt:
    """What one request produced, before the provider-independent checks."""

    content: str = ""                     # text reply (text/message/prefill transports)
    tool_calls: Optional[list[tuple[str, str]]] = None  # (name, arguments JSON) for tool-call
    truncated: bool = False               # the output-token limit was hit
    finish: Optional[str] = None          # provider's finish/stop reason
    uncached_input: int = 0
    cached_input: int = 0
    output: int = 0
    model: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    request: Optional[dict[str, Any]] = None   # what was sent: {"endpoint", "body"} (never headers)


class Streamer:
    """Delivers deltas of one call to ``request.on_delta`` through the transport's cleanup.

    Guarantee: the deltas delivered since the last restart concatenate to
    ``Completion.text``. A restart (``request.extra["on_restart"](reason)``, if the caller
    supplied it) is signalled when deltas were shown and must be discarded: before a retry,
    or in the rare case that the final cleanup removed text already shown.
    """

    def __init__(self, request: ModelRequest, deadline: Optional[float]):
        self.on_delta = request.on_delta
        self.on_restart: Optional[Callable[[str], None]] = request.extra.get("on_restart")
        self.enabled = request.on_delta is not None
        self.deadline = deadline
        self.shown = False
        self.restarts = 0
        self._clean: Optional[StreamCleaner] = None
        self._joiner: Optional[AnthropicPrefillJoiner] = None
        self._tool: Optional[ToolArgsDecoder] = None
        self.partial = ""  # everything received in this attempt (for error reports)

    def begin(self, prefix: str, *, clean: bool, joiner: Optional[AnthropicPrefillJoiner] = None,
              tool: bool = False) -> None:
        self._clean = StreamCleaner(prefix, clean=clean)
        self._joiner = joiner
        self._tool = ToolArgsDecoder() if tool else None
        self.partial = ""

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise CallFailure("timeout", "timed out (total_timeout exceeded while streaming)")

    def _emit(self, text: str) -> None:
        if text:
            self.shown = True
            assert self.on_delta is not None
            self.on_delta(text)

    def text(self, chunk: str) -> None:
        """A chunk of a text reply."""
        self._check_deadline()
        if not chunk:
            return
        self.partial += chunk
        if not self.enabled or self._clean is None:
            return
        if self._joiner is not None:
            chunk = self._joiner.feed(chunk)
        self._emit(self._clean.feed(chunk))

    def tool_args(self, fragment: str) -> None:
        """A fragment of the first tool call's JSON arguments."""
        self._check_deadline()
        if not fragment:
            return
        self.partial += fragment
        if not self.enabled or self._tool is None or self._clean is None:
            return
        decoded = self._tool.feed(fragment)
        if decoded:
            self._emit(self._clean.feed(decoded))

    def finish(self, final: str) -> None:
        """Deliver whatever the final text adds to the deltas shown so far."""
        if not self.enabled or self._clean is None:
            return
        rest, consistent = self._clean.finish(final)
        if not consistent:
            self.restart("the cleaned completion differs from the streamed text")
        self._emit(rest)

    def restart(self, reason: str) -> None:
        if self.shown:
            self.restarts += 1
            if self.on_restart is not None:
                self.on_restart(reason)
        self.shown = False
        if self._clean is not None:
            self._clean = StreamCleaner(self._clean.prefix, clean=self._clean.clean)


class BaseProvider:
    """The Model protocol for a provider that implements ``_attempt`` (one HTTP request) and
    ``_classify`` (its SDK's exceptions -> CallFailure)."""

    provider = ""

    def __init__(self, profile: Profile, *, sleep: Optional[Callable[[float], None]] = None):
        self.profile = profile
        self.name = profile.name
        self.transport = profile.transport
        self.policy = RetryPolicy.from_profile(profile, sleep)
        self._client: Any = None
        self._client_lock = threading.Lock()

    # --- things subclasses provide ---------------------------------------------------------
    def _make_client(self, api_key: Optional[str]) -> Any:
        raise NotImplementedError

    def _attempt(self, kind: str, prefix: str, system: Optional[str], note: Optional[str],
                 stream: Streamer) -> Attempt:
        raise NotImplementedError

    def _classify(self, exc: BaseException) -> Optional[CallFailure]:
        return transport_failure(exc)

    def _wire(self, path: str, params: dict[str, Any], **stream_fields: Any) -> dict[str, Any]:
        """The JSON body a request with these SDK ``params`` sends (``extra_body`` merged in,
        as the SDKs do), and where to: recorded with the call (``sent.record_request``)."""
        body = {k: v for k, v in params.items() if k != "extra_body"}
        body.update(params.get("extra_body") or {})
        body.update(stream_fields)
        return {"endpoint": (self.profile.url or "").rstrip("/") + path, "body": body}

    def _prefill_text(self, prefix: str, content: str) -> str:
        return content

    def _prefill_joiner(self, prefix: str) -> Optional[AnthropicPrefillJoiner]:
        return None

    # --- the Model protocol ----------------------------------------------------------------
    def estimate_input_cost(self, prefix: str, kind: str = "spell") -> float:
        """USD for sending this prefix (and the transport's system prompt) once, at the
        uncached input price, counting CHARS_PER_TOKEN characters a token: a rough figure for
        the budget check before a call, not the bill (that comes from the provider's usage)."""
        from ..prompts import system_prompt
        chars = len(prefix) + (len(system_prompt(self.transport)) if kind != TEXT else 0)
        return self.profile.cost(-(-chars // CHARS_PER_TOKEN), 0, 0)

    def cache_settings(self) -> dict[str, Any]:
        """Settings that change the answer: the profile's (provider, base_url, model,
        transport, temperature, max_tokens, reasoning, ...) plus the system prompt version and
        a digest of its text. Never the key."""
        from ..prompts import PROMPT_VERSION, prompt_digest
        return {**self.profile.settings(), "prompt_version": PROMPT_VERSION,
                "prompt_digest": prompt_digest(self.transport)}

    def complete(self, request: ModelRequest) -> Completion:
        from ..prompts import system_prompt
        kind = TEXT if request.kind == "text" else self.transport
        system = request.system
        if system is None and kind != TEXT:
            system = system_prompt(kind)
        deadline = (time.monotonic() + self.profile.total_timeout) if self.profile.total_timeout else None
        stream = Streamer(request, deadline)
        totals = [0, 0, 0]
        note: Optional[str] = None
        attempts_info: list[dict[str, Any]] = []
        problem: Optional[str] = None
        text = ""
        att = Attempt()
        for content_round in range(2):
            try:
                att, text, transport_tries = self._with_retries(kind, request.prefix, system, note, stream)
            except ModelError as err:
                # What earlier attempts of this call cost is still spent.
                err.usage = Usage(totals[0], totals[1], totals[2],  # type: ignore[attr-defined]
                                  self.profile.cost(*totals))
                raise
            totals[0] += att.uncached_input
            totals[1] += att.cached_input
            totals[2] += att.output
            problem = self._problem(kind, att, text)
            attempts_info.append({"finish": att.finish, "problem": problem,
                                  "http_attempts": transport_tries, **att.info})
            if problem is None or content_round == 1:
                break
            note = self._retry_note(problem, att)
            log.warning("%s: %s; asking once more%s", self.name, note.removeprefix(";; system: "),
                        "" if self._has_message_channel(kind) else " (no note: raw prefill)")
            stream.restart(f"retrying: {problem}")
        usage = Usage(totals[0], totals[1], totals[2], self.profile.cost(*totals))
        if problem == "truncated" and not text.strip():
            problem = "empty"
        if problem in ("empty", "no-tool", "many-tools"):
            desc = {"empty": "the model returned an empty answer",
                    "no-tool": f"the model did not call the {TOOL_NAME} tool",
                    "many-tools": f"the model made more than one {TOOL_NAME} call"}[problem]
            raise self._error(f"{desc} (also after one retry with a note)", retryable=True,
                              received=clip(att.content or json.dumps(att.tool_calls or [])),
                              usage=usage)
        raw = {"provider": self.provider, "profile": self.name, "model": att.model or self.profile.model,
               "transport": kind, "attempts": attempts_info, "truncated": problem == "truncated",
               "stream_restarts": stream.restarts}
        if att.request is not None:   # the request that produced this answer
            raw["request"] = record_request(att.request["endpoint"], att.request["body"],
                                            prefix=request.prefix, system=system,
                                            redact=lambda t: self.redact(t) or "")
        return Completion(text, usage, att.model or self.profile.model, kind, raw)

    # --- internals -------------------------------------------------------------------------
    def _has_message_channel(self, kind: str) -> bool:
        return not (kind == PREFILL and self.provider in ("openai", "ollama"))

    def _retry_note(self, problem: str, att: Attempt) -> str:
        what = {"empty": "was empty", "truncated": "was truncated",
                "no-tool": f"had no {TOOL_NAME} tool call",
                "many-tools": f"had {len(att.tool_calls or [])} {TOOL_NAME} tool calls (exactly one is required)",
                }[problem]
        return (f";; system: retrying — previous response {what}, "
                f"max output tokens {self.profile.max_tokens}")

    def _problem(self, kind: str, att: Attempt, text: str) -> Optional[str]:
        if kind == TOOL_CALL:
            calls = [c for c in (att.tool_calls or []) if c[0] == TOOL_NAME]
            if not calls and not att.truncated:
                return "no-tool"
            if len(calls) > 1:
                return "many-tools"
        if not text.strip():
            return "truncated" if att.truncated else "empty"
        if att.truncated:
            return "truncated"
        return None

    def _final_text(self, kind: str, prefix: str, att: Attempt) -> str:
        if kind == TEXT:
            return att.content
        if kind == PREFILL:
            return self._prefill_text(prefix, att.content)
        if kind == MESSAGE:
            return clean_response(prefix, att.content)
        calls = [c for c in (att.tool_calls or []) if c[0] == TOOL_NAME]
        if len(calls) != 1:
            return ""
        args = calls[0][1] or ""
        try:
            data = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            if att.truncated:
                dec = ToolArgsDecoder()
                dec.feed(args)
                return clean_response(prefix, dec.decoded)
            raise CallFailure("malformed", f"the {TOOL_NAME} arguments are not valid JSON ({e.msg})",
                              received=clip(args)) from None
        suffix = data.get("suffix") if isinstance(data, dict) else None
        if not isinstance(suffix, str):
            if att.truncated or not args.strip():
                return ""
            raise CallFailure("malformed", f"the {TOOL_NAME} arguments have no string 'suffix'",
                              received=clip(args))
        return clean_response(prefix, suffix)

    def _client_for_call(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client(self._api_key())
            return self._client

    def _api_key(self) -> Optional[str]:
        """The key from the profile's environment variable (read from the environment only)."""
        import os
        env = self.profile.api_key_env
        if not env:
            return None
        key = os.environ.get(env)
        if not key:
            raise CallFailure("fatal", f"the environment variable {env} (API key for profile "
                                       f"{self.name}) is not set")
        return key

    def _secrets(self) -> list[str]:
        import os
        env = self.profile.api_key_env
        key = os.environ.get(env) if env else None
        return [key] if key and len(key) >= 4 else []

    def redact(self, text: Optional[str]) -> Optional[str]:
        """Remove the API key from text that leaves the provider (messages, received, raw)."""
        if text is None:
            return None
        for s in self._secrets():
            text = text.replace(s, "[redacted]")
        return text

    def _error(self, message: str, *, retryable: bool, status: Optional[int] = None,
               received: Optional[str] = None, usage: Optional[Usage] = None) -> ModelError:
        err = ModelError(self.redact(f"{self.name}: {message}") or "", retryable=retryable,
                         status=status, received=self.redact(received))
        err.usage = usage  # type: ignore[attr-defined]  # what failed attempts cost
        return err

    def _one(self, kind: str, prefix: str, system: Optional[str], note: Optional[str],
             stream: Streamer) -> tuple[Attempt, str]:
        failure: Optional[CallFailure] = None
        stream.begin(prefix, clean=kind in (MESSAGE, TOOL_CALL),
                     joiner=self._prefill_joiner(prefix) if kind == PREFILL else None,
                     tool=kind == TOOL_CALL)
        try:
            att = self._attempt(kind, prefix, system, note, stream)
            text = self._final_text(kind, prefix, att)
            stream.finish(text)
            return att, text
        except CallFailure as f:
            failure = f
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised if unknown
            failure = self._classify(exc)
            if failure is None:
                raise
            if failure.kind == "timeout" and _is_connect_timeout(exc):
                # Nothing was sent: this is a connection problem, and worth a retry.
                failure = CallFailure("transient", f"could not connect within "
                                                   f"{self.profile.connect_timeout:g}s")
            elif failure.kind == "timeout" and stream.partial:
                failure.received = clip(stream.partial)
        # Raised outside the except block: no chained SDK exception (which holds the request
        # and its auth header) is attached to what we raise.
        raise failure

    def _with_retries(self, kind: str, prefix: str, system: Optional[str], note: Optional[str],
                      stream: Streamer) -> tuple[Attempt, str, int]:
        tries = 0
        while True:
            tries += 1
            failure: Optional[CallFailure] = None
            try:
                att, text = self._one(kind, prefix, system, note, stream)
                return att, text, tries
            except CallFailure as f:
                failure = f
            retries_done = tries - 1
            if failure.kind == "transient" and retries_done < self.policy.max_retries:
                wait = self.policy.delay(retries_done, failure.retry_after)
                log.warning("%s: %s; retry %d/%d in %.2fs", self.name, self.redact(failure.message),
                            retries_done + 1, self.policy.max_retries, wait)
                stream.restart(f"retrying after: {failure.message}")
                self.policy.sleep(wait)
                continue
            raise self._to_model_error(failure, tries)

    def _to_model_error(self, f: CallFailure, tries: int) -> ModelError:
        if f.kind == "transient":
            return self._error(f"{f.message} (gave up after {tries} attempt{'s' if tries != 1 else ''})",
                               retryable=True, status=f.status, received=f.received)
        if f.kind == "timeout":
            msg = f.message if "total_timeout" in f.message else (
                f"{f.message}: no data for {self.profile.timeout:g}s (the profile's timeout)")
            return self._error(msg, retryable=True, status=f.status, received=f.received)
        if f.kind == "malformed":
            return self._error(f.message, retryable=True, status=f.status, received=f.received)
        return self._error(f.message, retryable=False, status=f.status, received=f.received)
