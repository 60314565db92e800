"""OpenAI-compatible servers (OpenAI, vLLM, llama.cpp, LM Studio, ...) through the ``openai`` SDK.

Transports:

* ``message`` — chat completions; the prefix is the user message and the reply, cleaned of
  code fences and prefix echoes, is the suffix.
* ``tool-call`` — chat completions with one function tool ``spell_suffix(suffix: string)`` and
  ``tool_choice`` forcing it; exactly one call is required.
* ``prefill`` — the legacy text completions endpoint (``/v1/completions``): the prompt is the
  prefix itself and the continuation is the suffix (``system_in_prompt`` optionally puts the
  system prompt in front, for base models that benefit from it).
* ``text`` (leaf-llm) — chat completions, no tools, no Spell system prompt.

The SDK does the HTTP (base URL, auth header, timeouts, SSE parsing) with ``max_retries=0``;
retries are ours (retry.py). Non-streamed answers are read through ``with_raw_response`` so a
body that is not JSON can be reported verbatim; streamed ones are read chunk by chunk from
the SDK's stream.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import httpx2
import openai

from .base import PREFILL, TOOL_CALL
from .retry import (TOOL_NAME, Attempt, BaseProvider, CallFailure, Streamer, clip,
                    error_message_from_body, status_failure, transport_failure)

TOOL_SPEC = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Submit the text that continues the Spell program (appended verbatim "
                       "to the program you were given).",
        "parameters": {
            "type": "object",
            "properties": {"suffix": {"type": "string",
                                      "description": "The continuation of the program."}},
            "required": ["suffix"],
            "additionalProperties": False,
        },
    },
}
FORCE_TOOL = {"type": "function", "function": {"name": TOOL_NAME}}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or key access: SDK stream chunks are constructed without validation, so a
    field a server left out is simply absent."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    value = getattr(obj, name, default)
    return default if value is None else value


def _usage(u: Any) -> tuple[int, int, int]:
    """(uncached input, cached input, output) from an OpenAI usage object; ``prompt_tokens``
    includes the cached ones."""
    if not u:
        return 0, 0, 0
    prompt = int(_get(u, "prompt_tokens", 0) or 0)
    details = _get(u, "prompt_tokens_details", None)
    cached = int(_get(details, "cached_tokens", 0) or 0) if details else 0
    return max(0, prompt - cached), cached, int(_get(u, "completion_tokens", 0) or 0)


class OpenAICompatModel(BaseProvider):
    provider = "openai"

    def _make_client(self, api_key: Optional[str]) -> openai.OpenAI:
        p = self.profile
        return openai.OpenAI(api_key=api_key or "no-key-configured", base_url=p.url,
                             timeout=httpx2.Timeout(p.timeout, connect=p.connect_timeout),
                             max_retries=0)

    def _classify(self, exc: BaseException) -> Optional[CallFailure]:
        if isinstance(exc, openai.APITimeoutError):
            return CallFailure("timeout", "timed out")
        if isinstance(exc, openai.APIConnectionError):
            return CallFailure("transient", "connection error (refused, reset or dropped)")
        if isinstance(exc, openai.APIResponseValidationError):
            return CallFailure("malformed", "the response does not match the API schema",
                               status=exc.status_code, received=clip(str(exc.body)))
        if isinstance(exc, openai.APIStatusError):
            return status_failure(exc.status_code, exc.response.headers,
                                  error_message_from_body(exc.body) or exc.message)
        if isinstance(exc, openai.APIError):
            # An error object inside a stream (``data: {"error": ...}``): the request was
            # accepted, then the server failed; worth a retry.
            msg = error_message_from_body({"error": exc.body}) or exc.message
            return CallFailure("transient", f"error in the response stream: {msg}")
        return transport_failure(exc)

    # --- one request -----------------------------------------------------------------------
    def _attempt(self, kind: str, prefix: str, system: Optional[str], note: Optional[str],
                 stream: Streamer) -> Attempt:
        client = self._client_for_call()
        if kind == PREFILL:
            return self._completions(client, prefix, system, stream)
        p = self.profile
        messages: list[dict[str, Any]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prefix if note is None else f"{prefix}\n{note}"})
        params: dict[str, Any] = {"model": p.model, "messages": messages,
                                  p.max_tokens_field: p.max_tokens}
        if p.temperature is not None:
            params["temperature"] = p.temperature
        if p.reasoning.get("effort"):
            params["reasoning_effort"] = p.reasoning["effort"]
        if kind == TOOL_CALL:
            params["tools"] = [TOOL_SPEC]
            params["tool_choice"] = FORCE_TOOL
        if p.extra_body:
            params["extra_body"] = dict(p.extra_body)
        if stream.enabled:
            att = self._chat_stream(client, params, stream)
            att.request = self._wire("/chat/completions", params, stream=True,
                                     stream_options={"include_usage": True})
            return att
        sent = self._wire("/chat/completions", params)
        resp = client.chat.completions.with_raw_response.create(**params)
        body = resp.http_response.text
        data = json.loads(body)
        choice = self._first_choice(data, body)
        msg = choice.get("message") or {}
        if not isinstance(msg, dict):
            raise CallFailure("malformed", "choices[0].message is not an object", received=clip(body))
        calls = []
        for tc in msg.get("tool_calls") or []:
            fn = (tc or {}).get("function") or {}
            calls.append((fn.get("name") or "", fn.get("arguments") or ""))
        finish = choice.get("finish_reason")
        content = msg.get("content") or ""
        if not isinstance(content, str):
            raise CallFailure("malformed", "choices[0].message.content is not a string",
                              received=clip(body))
        unc, cached, out = _usage(data.get("usage"))
        return Attempt(content=content, tool_calls=calls if kind == TOOL_CALL else None,
                       truncated=finish == "length", finish=finish, uncached_input=unc,
                       cached_input=cached, output=out, model=data.get("model") or "",
                       info={"id": data.get("id")}, request=sent)

    @staticmethod
    def _first_choice(data: Any, body: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise CallFailure("malformed", "the response is not a JSON object", received=clip(body))
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise CallFailure("malformed", "the response has no choices", received=clip(body))
        return choices[0]

    def _chat_stream(self, client: openai.OpenAI, params: dict[str, Any], stream: Streamer) -> Attempt:
        content: list[str] = []
        calls: dict[int, list[str]] = {}   # index -> [name, arguments]
        first_index: Optional[int] = None
        finish: Optional[str] = None
        usage = (0, 0, 0)
        model = ""
        rid = None
        s = client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True})
        with s:
            for chunk in s:
                model = _get(chunk, "model", model) or model
                rid = rid or _get(chunk, "id", None)
                u = _get(chunk, "usage", None)
                if u:
                    usage = _usage(u)
                for choice in _get(chunk, "choices", []) or []:
                    if _get(choice, "index", 0) != 0:
                        continue
                    delta = _get(choice, "delta", None)
                    if delta is not None:
                        text = _get(delta, "content", None)
                        if text:
                            content.append(text)
                            if params.get("tools") is None:
                                stream.text(text)
                        for tc in _get(delta, "tool_calls", []) or []:
                            idx = _get(tc, "index", 0)
                            slot = calls.setdefault(idx, ["", ""])
                            fn = _get(tc, "function", None)
                            if fn is None:
                                continue
                            slot[0] += _get(fn, "name", "") or ""
                            frag = _get(fn, "arguments", "") or ""
                            slot[1] += frag
                            if first_index is None:
                                first_index = idx
                            if idx == first_index and frag:
                                stream.tool_args(frag)
                    fr = _get(choice, "finish_reason", None)
                    if fr:
                        finish = fr
        if finish is None:
            raise CallFailure("transient", "the response stream ended before the answer was "
                                           "complete (connection dropped?)",
                              received=clip("".join(content) or None))
        unc, cached, out = usage
        return Attempt(content="".join(content),
                       tool_calls=[(v[0], v[1]) for _, v in sorted(calls.items())]
                       if params.get("tools") is not None else None,
                       truncated=finish == "length", finish=finish, uncached_input=unc,
                       cached_input=cached, output=out, model=model, info={"id": rid, "streamed": True})

    def _completions(self, client: openai.OpenAI, prefix: str, system: Optional[str],
                     stream: Streamer) -> Attempt:
        p = self.profile
        prompt = f"{system.rstrip()}\n\n{prefix}" if (p.system_in_prompt and system) else prefix
        params: dict[str, Any] = {"model": p.model, "prompt": prompt, "max_tokens": p.max_tokens}
        if p.temperature is not None:
            params["temperature"] = p.temperature
        if p.extra_body:
            params["extra_body"] = dict(p.extra_body)
        if stream.enabled:
            sent = self._wire("/completions", params, stream=True, stream_options={"include_usage": True})
            parts: list[str] = []
            finish: Optional[str] = None
            usage = (0, 0, 0)
            model = ""
            s = client.completions.create(**params, stream=True, stream_options={"include_usage": True})
            with s:
                for chunk in s:
                    model = _get(chunk, "model", model) or model
                    u = _get(chunk, "usage", None)
                    if u:
                        usage = _usage(u)
                    for choice in _get(chunk, "choices", []) or []:
                        if _get(choice, "index", 0) != 0:
                            continue
                        text = _get(choice, "text", "") or ""
                        if text:
                            parts.append(text)
                            stream.text(text)
                        fr = _get(choice, "finish_reason", None)
                        if fr:
                            finish = fr
            if finish is None:
                raise CallFailure("transient", "the response stream ended before the answer was "
                                               "complete (connection dropped?)",
                                  received=clip("".join(parts) or None))
            unc, cached, out = usage
            return Attempt(content="".join(parts), truncated=finish == "length", finish=finish,
                           uncached_input=unc, cached_input=cached, output=out, model=model,
                           info={"streamed": True}, request=sent)
        sent = self._wire("/completions", params)
        resp = client.completions.with_raw_response.create(**params)
        body = resp.http_response.text
        data = json.loads(body)
        choice = self._first_choice(data, body)
        text = choice.get("text")
        if not isinstance(text, str):
            raise CallFailure("malformed", "choices[0].text is missing", received=clip(body))
        finish = choice.get("finish_reason")
        unc, cached, out = _usage(data.get("usage"))
        return Attempt(content=text, truncated=finish == "length", finish=finish,
                       uncached_input=unc, cached_input=cached, output=out,
                       model=data.get("model") or "", info={"id": data.get("id")}, request=sent)
