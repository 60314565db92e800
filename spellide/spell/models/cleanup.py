"""Cleaning model replies into program suffixes, in one piece or while they stream.

Message and tool-call transports ask a chat model for "the text that comes next", and chat
models like to wrap code in markdown fences and to repeat the program they were given. The
runtime concatenates ``prefix + suffix``, so both habits would corrupt the program:
``strip_code_fences`` removes a leading/trailing fence, ``strip_prefix_echo`` removes a repeated
prefix (exact match first, then ignoring surrounding whitespace, then ignoring differences in
whitespace runs, which is how models most often re-type code).

Streaming makes this harder: a delta that has been shown cannot be taken back. ``StreamCleaner``
therefore only releases text that the final cleanup cannot remove any more: it waits while the
reply could still be an opening fence or an echo of the prefix, and it holds back a trailing
line that could still turn out to be a closing fence. ``finish`` then computes the final text
from the whole reply with the same functions and releases the rest, so the concatenation of
released deltas equals the final text; if it ever cannot (the released text is not a prefix
of the final text) it says so and the caller restarts the stream.

``AnthropicPrefillJoiner`` handles the other transport-specific seam: the prefix whose trailing
whitespace was removed before it was sent as an assistant prefill (see anthropic_provider).
"""

from __future__ import annotations

import re
from typing import Optional

_FENCE_OPEN = re.compile(r"\A\s*(`{3,}|~{3,})[^\n`]*\n")
_FENCE_LINE = re.compile(r"(?m)^[ \t]*(`{3,}|~{3,})[ \t]*$")
_TRAILING_FENCE = re.compile(r"(?:\n[ \t]*)?(?:`{3,}|~{3,})[ \t]*\s*\Z")
_WS = re.compile(r"\s+")


def strip_code_fences(text: str) -> str:
    """Remove a markdown code fence around a reply.

    An opening fence line (```` ```lisp ```` etc.) at the start is dropped together with the last
    fence-only line after it and anything following that line (models sometimes add prose after
    the block). Without an opening fence, only a fence at the very end is dropped. Text without
    fences is returned unchanged (the identity matters: prefill-like replies must not be
    touched).
    """
    m = _FENCE_OPEN.match(text)
    if m:
        body = text[m.end():]
        closes = [c for c in _FENCE_LINE.finditer(body) if c.group(1)[0] == m.group(1)[0]]
        if closes:
            body = body[:closes[-1].start()]
            if body.endswith("\n"):
                body = body[:-1]
        return body
    stripped = text.lstrip()
    if stripped.startswith("```") and "\n" not in stripped:
        # A one-line fenced reply: ```(def x 1)```
        inner = stripped[3:]
        if inner.rstrip().endswith("```"):
            inner = inner.rstrip()[:-3]
        return inner
    t = _TRAILING_FENCE.search(text)
    if t:
        return text[:t.start()]
    return text


def _match_ignoring_ws_runs(prefix: str, response: str) -> Optional[int]:
    """If ``response`` starts with ``prefix`` up to the lengths of whitespace runs, return
    the index in ``response`` just after the match, else None. Both are expected to be
    stripped at the start; a whitespace run must be matched by a whitespace run."""
    i = j = 0
    n, m = len(prefix), len(response)
    while i < n:
        if prefix[i].isspace():
            if j >= m or not response[j].isspace():
                return None
            while i < n and prefix[i].isspace():
                i += 1
            while j < m and response[j].isspace():
                j += 1
            continue
        if j >= m or response[j] != prefix[i]:
            return None
        i += 1
        j += 1
    return j


def strip_prefix_echo(prefix: str, response: str) -> str:
    """Remove a repetition of ``prefix`` at the start of ``response``.

    Tried in order: exact match; match after stripping whitespace around both; match where
    whitespace runs may differ in length or kind (``(do\\n  (def`` echoes ``(do (def``). A
    response that does not start with the whole prefix is returned unchanged.
    """
    if not prefix or not prefix.strip():
        return response
    if response.startswith(prefix):
        return response[len(prefix):]
    p = prefix.strip()
    r = response.lstrip()
    if r.startswith(p):
        return r[len(p):]
    end = _match_ignoring_ws_runs(p, r)
    if end is not None:
        return r[end:]
    return response


def clean_response(prefix: str, response: str) -> str:
    """The whole cleanup for message and tool-call replies: fences, then echo."""
    return strip_prefix_echo(prefix, strip_code_fences(response))


def _could_become_echo(prefix: str, partial: str) -> bool:
    """True while ``partial`` (a reply still arriving) might grow into an echo of ``prefix``,
    i.e. it is, whitespace runs aside, a beginning of the stripped prefix."""
    p = prefix.strip()
    r = partial.lstrip()
    if not p:
        return False
    if not r:
        return True
    pn = _WS.sub(" ", p)
    rn = _WS.sub(" ", r)
    if rn.endswith(" "):
        rn = rn[:-1]
    return pn.startswith(rn)


class StreamCleaner:
    """Incremental ``clean_response``: ``feed`` returns the text that is now safe to show,
    ``finish`` returns what remains (see the module docstring for the guarantee)."""

    def __init__(self, prefix: str, *, clean: bool = True):
        self.prefix = prefix
        self.clean = clean
        self.raw = ""
        self.emitted = ""

    def _safe(self) -> str:
        raw = self.raw
        lead = raw.lstrip()
        if not lead:
            return ""
        body = raw
        if lead[0] in "`~":
            if len(lead) < 3 or (lead[:3] in ("```", "~~~") and "\n" not in lead):
                return ""  # could still be an opening fence line
            m = _FENCE_OPEN.match(raw)
            if m:
                body = raw[m.end():]
        stripped = strip_prefix_echo(self.prefix, body)
        if stripped is body and _could_become_echo(self.prefix, body):
            return ""
        body = stripped
        # Hold back from the first fence-only line: it may be the closing fence.
        c = _FENCE_LINE.search(body)
        if c:
            body = body[:c.start()]
            if body.endswith("\n"):
                body = body[:-1]
            return body
        # Hold back a trailing partial line that could still become a closing fence, and a
        # trailing run of backticks/whitespace on the last line (a same-line closing fence).
        nl = body.rfind("\n")
        if nl >= 0 and re.fullmatch(r"[ \t]*[`~]*[ \t]*", body[nl + 1:]):
            return body[:nl]
        t = re.search(r"[ \t`~]*\Z", body)
        if t is not None and ("`" in t.group(0) or "~" in t.group(0)):
            return body[:t.start()]
        return body

    def feed(self, chunk: str) -> str:
        """Add a chunk of the raw reply; return the newly releasable cleaned text."""
        self.raw += chunk
        if not self.clean:
            self.emitted += chunk
            return chunk
        safe = self._safe()
        if len(safe) > len(self.emitted) and safe.startswith(self.emitted):
            out = safe[len(self.emitted):]
            self.emitted = safe
            return out
        return ""

    def finish(self, final: Optional[str] = None) -> tuple[str, bool]:
        """Return ``(rest, consistent)``. ``final`` is the authoritative cleaned text (computed
        from the whole reply if not given). If the released deltas are a prefix of it,
        ``rest`` completes them and ``consistent`` is True; otherwise ``rest`` is the whole
        final text and the caller must tell the consumer to discard what it got."""
        if final is None:
            final = clean_response(self.prefix, self.raw) if self.clean else self.raw
        if final.startswith(self.emitted):
            rest = final[len(self.emitted):]
            self.emitted = final
            return rest, True
        self.emitted = final
        return final, False


class AnthropicPrefillJoiner:
    """Joins a prefill continuation onto the original prefix.

    The Anthropic API rejects an assistant prefill that ends in whitespace, so the provider
    sends ``prefix.rstrip()``. The model then continues *that* text and usually starts with the
    whitespace that was removed (or some other whitespace). The prefix we hand back to the
    runtime still has its own trailing whitespace, so leading whitespace of the reply is
    dropped when (and only when) the prefix's trailing whitespace was removed: the prefix's own
    whitespace already separates the tokens, and ``prefix + text`` reads as the model meant.
    """

    def __init__(self, prefix: str):
        self.strip_leading = prefix != prefix.rstrip()
        self.started = not self.strip_leading

    def join(self, reply: str) -> str:
        return reply.lstrip() if self.strip_leading else reply

    def feed(self, chunk: str) -> str:
        if self.started:
            return chunk
        chunk = chunk.lstrip()
        if chunk:
            self.started = True
        return chunk


_KEY_SEEK = re.compile(
    r'\A\s*\{\s*(?:"(?:[^"\\]|\\.)*"\s*:\s*(?:"(?:[^"\\]|\\.)*"|[-+.\w]+)\s*,\s*)*'
    r'"(?P<key>(?:[^"\\]|\\.)*)"\s*:\s*"')


class ToolArgsDecoder:
    """Decodes one string field of a JSON object while the object streams in.

    Tool-call transports stream the tool's arguments as fragments of JSON text
    (``{"suffix": "(def x \\"a``...). To show the model writing, the decoder finds the
    ``"suffix": "`` opening (after any simple fields before it) and decodes the string body as
    it arrives, holding back an incomplete escape (``\\``, ``\\u00``, a lone high surrogate).
    It stops at the closing quote. If the field is not found before other, nested values (not
    something our one-parameter tool produces), nothing is decoded incrementally and the caller
    uses the complete arguments at the end.
    """

    _SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

    def __init__(self, key: str = "suffix"):
        self.key = key
        self.buf = ""
        self.pos: Optional[int] = None  # index in buf where the string body starts/continues
        self.done = False
        self.gave_up = False
        self.decoded = ""

    def feed(self, fragment: str) -> str:
        """Add a fragment of the arguments text; return newly decoded characters."""
        self.buf += fragment
        if self.done or self.gave_up:
            return ""
        if self.pos is None:
            m = _KEY_SEEK.match(self.buf)
            if m is None:
                return ""
            if m.group("key") != self.key:
                # Another string field whose value is starting: skip it by continuing the seek
                # once its value has closed (the regex handles complete fields).
                return ""
            self.pos = m.end()
        out: list[str] = []
        buf, i, n = self.buf, self.pos, len(self.buf)
        while i < n:
            c = buf[i]
            if c == '"':
                self.done = True
                i += 1
                break
            if c != "\\":
                j = i
                while j < n and buf[j] not in '"\\':
                    j += 1
                out.append(buf[i:j])
                i = j
                continue
            if i + 1 >= n:
                break  # incomplete escape
            e = buf[i + 1]
            if e in self._SIMPLE:
                out.append(self._SIMPLE[e])
                i += 2
                continue
            if e != "u":
                self.gave_up = True  # invalid JSON; the final parse will report it
                break
            if i + 6 > n:
                break
            try:
                code = int(buf[i + 2:i + 6], 16)
            except ValueError:
                self.gave_up = True
                break
            if 0xD800 <= code < 0xDC00:
                if i + 12 > n:
                    break  # wait for the low surrogate
                if buf[i + 6:i + 8] == "\\u":
                    try:
                        low = int(buf[i + 8:i + 12], 16)
                    except ValueError:
                        low = -1
                    if 0xDC00 <= low < 0xE000:
                        out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                        i += 12
                        continue
                out.append("\ufffd")
                i += 6
                continue
            out.append(chr(code))
            i += 6
        self.pos = i
        text = "".join(out)
        self.decoded += text
        return text
