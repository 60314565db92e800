"""Anthropic Messages API through the ``anthropic`` SDK.

Transports:

* ``prefill`` — user message "Continue this Spell program.", assistant turn prefilled with the
  prefix; the reply is the raw continuation. The API rejects a prefill ending in whitespace,
  and Spell prefixes always end in one (``(do `` ...), so the prefill is ``prefix.rstrip()``
  and the reply's leading whitespace is dropped when that happened (``AnthropicPrefillJoiner``):
  ``prefix + text`` then reads exactly as the model's continuation of the trimmed prefill,
  with the prefix's own whitespace as the separator.
* ``tool-call`` — the prefix is the user message; a forced ``tool_use`` of ``spell_suffix``
  carries ``input.suffix``. With extended thinking the API does not allow a forced tool, so
  ``tool_choice`` is ``auto`` then and a missing call is handled by the one retry.
  Some newer models reject assistant prefill altogether (HTTP 400); the error says to use a
  tool-call profile.

Reasoning settings (profile ``reasoning`` table): ``budget_tokens = N`` (extended thinking),
``thinking = "adaptive"``, ``effort = "low".."max"`` (``output_config.effort``). Thinking is never
sent with a prefill. ``temperature`` is not an argument of the current SDK any more; when a
profile sets it, it is sent as a raw body field for the models that still take it.
* ``message`` — the prefix is the user message, the reply is cleaned like OpenAI's.
* ``text`` (leaf-llm) — a plain user message, no tools, no Spell system prompt.

Prompt caching (``prompt_cache = true``): the system prompt and the program are marked as
cache breakpoints. Successive prefixes of one run usually extend each other, so the program is
sent as the previous call's text blocks plus one block with what is new; the earlier blocks
then match what was cached last time.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, Optional

import anthropic
import httpx2

from .base import PREFILL, TEXT, TOOL_CALL
from .cleanup import AnthropicPrefillJoiner
from .retry import (TOOL_NAME, Attempt, BaseProvider, CallFailure, Streamer, clip,
                    error_message_from_body, status_failure, transport_failure)

PREFILL_USER_MESSAGE = "Continue this Spell program."
TOOL_SPEC = {
    "name": TOOL_NAME,
    "description": "Submit the text that continues the Spell program (appended verbatim to "
                   "the program you were given).",
    "input_schema": {
        "type": "object",
        "properties": {"suffix": {"type": "string", "description": "The continuation of the program."}},
        "required": ["suffix"],
    },
}
_CACHE = {"type": "ephemeral"}
_STREAM_ERROR_STATUS = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429,
                        "timeout_error": 504}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    value = getattr(obj, name, default)
    return default if value is None else value


def _usage(u: Any) -> tuple[int, int, int]:
    """(uncached input, cached input, output). Anthropic's ``input_tokens`` already excludes
    cache reads and writes; cache writes are billed as input here (their 1.25x surcharge is not
    modelled)."""
    if not u:
        return 0, 0, 0
    return (int(_get(u, "input_tokens", 0) or 0) + int(_get(u, "cache_creation_input_tokens", 0) or 0),
            int(_get(u, "cache_read_input_tokens", 0) or 0), int(_get(u, "output_tokens", 0) or 0))


class AnthropicModel(BaseProvider):
    provider = "anthropic"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._blocks_seen: "OrderedDict[str, list[str]]" = OrderedDict()
        self._blocks_lock = threading.Lock()

    def _make_client(self, api_key: Optional[str]) -> anthropic.Anthropic:
        p = self.profile
        return anthropic.Anthropic(api_key=api_key or "no-key-configured", base_url=p.url,
                                   timeout=httpx2.Timeout(p.timeout, connect=p.connect_timeout),
                                   max_retries=0)

    def _prefill_joiner(self, prefix: str) -> Optional[AnthropicPrefillJoiner]:
        return AnthropicPrefillJoiner(prefix)

    def _prefill_text(self, prefix: str, content: str) -> str:
        return AnthropicPrefillJoiner(prefix).join(content)

    def _classify(self, exc: BaseException) -> Optional[CallFailure]:
        if isinstance(exc, anthropic.APITimeoutError):
            return CallFailure("timeout", "timed out")
        if isinstance(exc, anthropic.APIConnectionError):
            return CallFailure("transient", "connection error (refused, reset or dropped)")
        if isinstance(exc, anthropic.APIResponseValidationError):
            return CallFailure("malformed", "the response does not match the API schema",
                               status=exc.status_code, received=clip(str(exc.body)))
        if isinstance(exc, anthropic.APIStatusError):
            body = exc.body
            msg = error_message_from_body(body) or exc.message
            if exc.status_code < 400:
                # An ``event: error`` inside a 200 stream (e.g. overloaded_error).
                etype = (body.get("error") or {}).get("type") if isinstance(body, dict) else None
                status = _STREAM_ERROR_STATUS.get(etype or "")
                if status:
                    f = status_failure(status, None, msg)
                    f.message = f"error in the response stream: {msg}"
                    return f
                return CallFailure("fatal", f"error in the response stream: {msg}")
            failure = status_failure(exc.status_code, exc.response.headers, msg)
            if exc.status_code == 400 and "prefill" in (msg or "").lower():
                failure.message += (" — this model does not accept an assistant prefill; "
                                    "use a tool-call profile (e.g. anthropic-tc)")
            return failure
        if isinstance(exc, anthropic.APIError):
            return CallFailure("transient", f"API error: {exc.message}")
        return transport_failure(exc)

    # --- request building ------------------------------------------------------------------
    def _program_blocks(self, text: str) -> list[dict[str, Any]]:
        """The program as text blocks; with prompt caching, reuse the block split of the
        longest earlier program this one extends and mark the last block."""
        if not self.profile.prompt_cache:
            return [{"type": "text", "text": text}]
        with self._blocks_lock:
            best: list[str] = []
            best_len = 0
            for seen, parts in self._blocks_seen.items():
                if len(seen) > best_len and text.startswith(seen) and len(seen) <= len(text):
                    best, best_len = parts, len(seen)
            rest = text[best_len:]
            parts = list(best) + ([rest] if rest else [])
            self._blocks_seen[text] = parts
            self._blocks_seen.move_to_end(text)
            while len(self._blocks_seen) > 64:
                self._blocks_seen.popitem(last=False)
        blocks = [{"type": "text", "text": t} for t in parts if t]
        if blocks:
            blocks[-1]["cache_control"] = dict(_CACHE)
        return blocks

    def _params(self, kind: str, prefix: str, system: Optional[str], note: Optional[str]) -> dict[str, Any]:
        p = self.profile
        params: dict[str, Any] = {"model": p.model, "max_tokens": p.max_tokens}
        if system:
            params["system"] = ([{"type": "text", "text": system, "cache_control": dict(_CACHE)}]
                                if p.prompt_cache else system)
        thinking = None
        if kind != PREFILL:
            if p.reasoning.get("budget_tokens"):
                thinking = {"type": "enabled", "budget_tokens": int(p.reasoning["budget_tokens"])}
            elif p.reasoning.get("thinking") == "adaptive":
                thinking = {"type": "adaptive"}
            if thinking:
                params["thinking"] = thinking
        if p.reasoning.get("effort"):
            params["output_config"] = {"effort": p.reasoning["effort"]}
        extra = dict(p.extra_body)
        if p.temperature is not None and thinking is None:
            # The current SDK no longer has a ``temperature`` argument; models that still
            # accept the field get it as a raw body field.
            extra.setdefault("temperature", p.temperature)
        if kind == PREFILL:
            prefill = prefix.rstrip()
            user = PREFILL_USER_MESSAGE if note is None else f"{PREFILL_USER_MESSAGE}\n{note}"
            messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
            if prefill:
                messages.append({"role": "assistant",
                                 "content": self._program_blocks(prefill)})
        elif kind == TEXT:
            messages = [{"role": "user", "content": prefix if note is None else f"{prefix}\n{note}"}]
        else:
            content = self._program_blocks(prefix)
            if note is not None:
                content.append({"type": "text", "text": note})
            messages = [{"role": "user", "content": content}]
        params["messages"] = messages
        if kind == TOOL_CALL:
            params["tools"] = [TOOL_SPEC]
            params["tool_choice"] = ({"type": "auto"} if thinking else {"type": "tool", "name": TOOL_NAME})
        if extra:
            params["extra_body"] = extra
        return params

    # --- one request -----------------------------------------------------------------------
    def _attempt(self, kind: str, prefix: str, system: Optional[str], note: Optional[str],
                 stream: Streamer) -> Attempt:
        client = self._client_for_call()
        params = self._params(kind, prefix, system, note)
        if stream.enabled:
            att = self._stream(client, kind, params, stream)
            att.request = self._wire("/v1/messages", params, stream=True)
            return att
        sent = self._wire("/v1/messages", params)
        resp = client.messages.with_raw_response.create(**params)
        body = resp.http_response.text
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise CallFailure("malformed", "the response has no content list", received=clip(body))
        texts: list[str] = []
        calls: list[tuple[str, str]] = []
        for block in data["content"]:
            if not isinstance(block, dict):
                raise CallFailure("malformed", "a content block is not an object", received=clip(body))
            if block.get("type") == "text":
                texts.append(block.get("text") or "")
            elif block.get("type") == "tool_use":
                calls.append((block.get("name") or "", json.dumps(block.get("input") or {})))
        stop = data.get("stop_reason")
        unc, cached, out = _usage(data.get("usage"))
        return Attempt(content="".join(texts), tool_calls=calls if kind == TOOL_CALL else None,
                       truncated=stop == "max_tokens", finish=stop, uncached_input=unc,
                       cached_input=cached, output=out, model=data.get("model") or "",
                       info={"id": data.get("id")}, request=sent)

    def _stream(self, client: anthropic.Anthropic, kind: str, params: dict[str, Any],
                stream: Streamer) -> Attempt:
        texts: list[str] = []
        blocks: dict[int, dict[str, Any]] = {}
        first_tool: Optional[int] = None
        stop: Optional[str] = None
        finished = False
        usage = [0, 0, 0]
        model = ""
        rid = None
        s = client.messages.create(**params, stream=True)
        with s:
            for ev in s:
                et = _get(ev, "type", "")
                if et == "message_start":
                    msg = _get(ev, "message", None)
                    model = _get(msg, "model", "") or ""
                    rid = _get(msg, "id", None)
                    usage = list(_usage(_get(msg, "usage", None)))
                elif et == "content_block_start":
                    idx = int(_get(ev, "index", 0))
                    cb = _get(ev, "content_block", None)
                    btype = _get(cb, "type", "")
                    blocks[idx] = {"type": btype, "name": _get(cb, "name", "") or "", "json": ""}
                    if btype == "tool_use" and first_tool is None:
                        first_tool = idx
                    if btype == "text":
                        t = _get(cb, "text", "") or ""
                        if t:
                            texts.append(t)
                            if kind != TOOL_CALL:
                                stream.text(t)
                elif et == "content_block_delta":
                    idx = int(_get(ev, "index", 0))
                    d = _get(ev, "delta", None)
                    dt = _get(d, "type", "")
                    if dt == "text_delta":
                        t = _get(d, "text", "") or ""
                        texts.append(t)
                        if kind != TOOL_CALL:
                            stream.text(t)
                    elif dt == "input_json_delta":
                        frag = _get(d, "partial_json", "") or ""
                        blocks.setdefault(idx, {"type": "tool_use", "name": "", "json": ""})["json"] += frag
                        if idx == first_tool:
                            stream.tool_args(frag)
                elif et == "message_delta":
                    stop = _get(_get(ev, "delta", None), "stop_reason", None) or stop
                    u = _get(ev, "usage", None)
                    if u:
                        if _get(u, "output_tokens", None) is not None:
                            usage[2] = int(_get(u, "output_tokens", 0))
                        if _get(u, "input_tokens", None) is not None:
                            in_u = _usage(u)
                            usage[0], usage[1] = in_u[0] or usage[0], in_u[1] or usage[1]
                elif et == "message_stop":
                    finished = True
        if not finished:
            raise CallFailure("transient", "the response stream ended before message_stop "
                                           "(connection dropped?)",
                              received=clip("".join(texts) or None))
        calls = [(b["name"], b["json"] or "{}") for _, b in sorted(blocks.items())
                 if b["type"] == "tool_use"]
        return Attempt(content="".join(texts), tool_calls=calls if kind == TOOL_CALL else None,
                       truncated=stop == "max_tokens", finish=stop, uncached_input=usage[0],
                       cached_input=usage[1], output=usage[2], model=model,
                       info={"id": rid, "streamed": True})
