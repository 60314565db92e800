"""Ollama through the ``ollama`` SDK.

Transports:

* ``prefill`` — ``/api/generate`` with ``raw=true``: no chat template, the prompt is the prefix
  itself (optionally preceded by the system prompt, ``system_in_prompt``), the continuation is
  the suffix. This is the natural transport for local models.
* ``message`` — ``/api/chat``; the prefix is the user message and the reply is cleaned of fences
  and echoes.
* ``text`` (leaf-llm) — ``/api/chat`` with a plain user message.

The SDK is built on httpx and exposes errors as ``ResponseError(error, status_code)`` without
the response headers, so an httpx response hook keeps the last response's headers (per
thread) to read ``Retry-After``. The profile's ``extra_body`` table goes into Ollama's
``options`` (``num_ctx``, ``top_p``, ...). Ollama reports no cached-token count.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

import httpx
import ollama

from .base import PREFILL
from .retry import (Attempt, BaseProvider, CallFailure, Streamer, clip, status_failure,
                    transport_failure)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    value = getattr(obj, name, default)
    return default if value is None else value


def _raised_in_sdk(exc: BaseException) -> bool:
    """True if the exception was raised inside the ollama package or pydantic (not by a bug
    of ours, which must surface as itself)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return bool(last) and any(part in last for part in ("/ollama/", "/pydantic/", "pydantic_core"))


class OllamaModel(BaseProvider):
    provider = "ollama"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._tls = threading.local()

    def _remember_headers(self, response: httpx.Response) -> None:
        self._tls.headers = response.headers

    def _make_client(self, api_key: Optional[str]) -> ollama.Client:
        p = self.profile
        headers = {"authorization": f"Bearer {api_key}"} if api_key else None
        return ollama.Client(host=p.url, timeout=httpx.Timeout(p.timeout, connect=p.connect_timeout),
                             headers=headers, event_hooks={"response": [self._remember_headers]})

    def _secrets(self) -> list[str]:
        # The ollama SDK itself sends OLLAMA_API_KEY when set; keep it out of messages too.
        extra = os.environ.get("OLLAMA_API_KEY")
        return super()._secrets() + ([extra] if extra and len(extra) >= 4 else [])

    def _classify(self, exc: BaseException) -> Optional[CallFailure]:
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code and exc.status_code > 0:
                return status_failure(exc.status_code, getattr(self._tls, "headers", None),
                                      str(exc.error))
            return CallFailure("transient", f"error in the response stream: {exc.error}")
        if isinstance(exc, ollama.RequestError):
            return CallFailure("fatal", f"bad request: {exc.error}")
        failure = transport_failure(exc)  # httpx errors, JSONDecodeError
        if failure is not None:
            return failure
        if isinstance(exc, (TypeError, ValueError)) and _raised_in_sdk(exc):
            # The SDK builds its response objects from the JSON: a body of the wrong shape
            # surfaces as a TypeError/ValidationError inside it.
            return CallFailure("malformed", f"unexpected response shape: {type(exc).__name__}: "
                                            f"{str(exc)[:300]}")
        return None

    def _options(self) -> dict[str, Any]:
        p = self.profile
        opts: dict[str, Any] = {"num_predict": p.max_tokens}
        if p.temperature is not None:
            opts["temperature"] = p.temperature
        opts.update(p.extra_body)
        return opts

    def _attempt(self, kind: str, prefix: str, system: Optional[str], note: Optional[str],
                 stream: Streamer) -> Attempt:
        client = self._client_for_call()
        p = self.profile
        self._tls.headers = None
        if kind == PREFILL:
            prompt = f"{system.rstrip()}\n\n{prefix}" if (p.system_in_prompt and system) else prefix
            call = lambda s: client.generate(model=p.model, prompt=prompt, raw=True, stream=s,  # noqa: E731
                                             options=self._options())
            sent = self._wire("/api/generate", {"model": p.model, "prompt": prompt, "raw": True,
                                                "stream": stream.enabled, "options": self._options()})
            field = "response"
        else:
            messages: list[dict[str, Any]] = []
            if system:
                messages.append({"role": "system", "content": system})
            messages.append({"role": "user", "content": prefix if note is None else f"{prefix}\n{note}"})
            think = p.reasoning.get("think")
            call = lambda s: client.chat(model=p.model, messages=messages, stream=s,  # noqa: E731
                                         options=self._options(), think=think)
            chat = {"model": p.model, "messages": messages, "tools": [],   # the SDK always sends a tools list
                    "stream": stream.enabled, "options": self._options()}
            sent = self._wire("/api/chat", chat if think is None else dict(chat, think=think))
            field = "message"

        def text_of(part: Any) -> str:
            if field == "response":
                t = _get(part, "response", "")
            else:
                t = _get(_get(part, "message", None), "content", "")
            if t is not None and not isinstance(t, str):
                raise CallFailure("malformed", f"'{field}' is not text", received=clip(repr(part)))
            return t or ""

        if stream.enabled:
            parts: list[str] = []
            last: Any = None
            for part in call(True):
                t = text_of(part)
                if t:
                    parts.append(t)
                    stream.text(t)
                if _get(part, "done", False):
                    last = part
            if last is None:
                raise CallFailure("transient", "the response stream ended before done=true "
                                               "(connection dropped?)",
                                  received=clip("".join(parts) or None))
            content = "".join(parts)
        else:
            last = call(False)
            content = text_of(last)
            if not _get(last, "done", True):
                raise CallFailure("malformed", "the response is not marked done",
                                  received=clip(repr(last)))
        reason = _get(last, "done_reason", None)
        return Attempt(content=content, truncated=reason == "length", finish=reason,
                       uncached_input=int(_get(last, "prompt_eval_count", 0) or 0),
                       output=int(_get(last, "eval_count", 0) or 0),
                       model=_get(last, "model", "") or "", info={"streamed": stream.enabled},
                       request=sent)
