"""What a model call sent, recorded small enough to keep with every step.

A person debugging an agent needs the exact request of a model call: the system prompt,
the prefix and how the transport wrapped them (messages, tool schema, prefill). The body of
that request is mostly two long texts the run already keeps elsewhere: the prefix (with its
step) and the system prompt (versioned with the code, named by its digest in the effect
key). So the recorded request is the body with every piece of those texts replaced by a
reference (``{"$text": "prefix", "start": i, "end": j}``) and their digests, and
``rebuild_request`` puts the texts back, checking the digests, to give the body as it went
over the wire. Headers are not recorded, so no key can be; strings are also redacted of the
provider's secrets in case a server or profile put one in the body.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Optional

__all__ = ["record_request", "rebuild_request", "text_digest", "MissingText"]

_MIN_PIECE = 32   # shorter strings are kept as they are (a reference would be longer)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class MissingText(Exception):
    """A text the request refers to is not available (or not the one that was sent)."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
        self.message = message


def _pieces(s: str, texts: list[tuple[str, str]]) -> Any:
    """``s`` as itself, or as ``{"$concat": [...]}`` of plain strings and text references."""
    for name, text in texts:
        if not text:
            continue
        if len(s) >= _MIN_PIECE and s in text:   # a piece of a long text (a cache block)
            i = text.find(s)
            return {"$text": name, "start": i, "end": i + len(s)}
        i = s.find(text)
        if i != -1:
            out: list[Any] = []
            for part in (s[:i], None, s[i + len(text):]):
                if part is None:
                    out.append({"$text": name, "start": 0, "end": len(text)})
                elif part:
                    sub = _pieces(part, texts)
                    out.extend(sub["$concat"] if isinstance(sub, dict) and "$concat" in sub else [sub])
            return {"$concat": out}
    return s


def record_request(endpoint: str, body: Any, *, prefix: str, system: Optional[str],
                   redact: Callable[[str], str] = lambda s: s) -> dict[str, Any]:
    """The recorded form of one request: ``endpoint``, the body with the prefix and system
    prompt referenced, and those texts' lengths and digests."""
    texts = [(n, t) for n, t in (("system", system or ""), ("prefix", prefix)) if t]
    texts.sort(key=lambda nt: -len(nt[1]))   # the longer text first: it may contain the other

    def walk(x: Any) -> Any:
        if isinstance(x, str):
            y = _pieces(x, texts)
            return redact(y) if isinstance(y, str) else y
        if isinstance(x, dict):
            return {str(k): walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        return x

    return {"endpoint": endpoint, "body": walk(body),
            "texts": {n: {"chars": len(t), "sha256": text_digest(t)} for n, t in texts}}


def rebuild_request(recorded: dict[str, Any], texts: dict[str, Optional[str]]) -> Any:
    """The body as sent, from a recorded request and the texts it refers to. Raises
    ``MissingText`` when a referenced text is not given or is not the one that was sent."""
    meta = recorded.get("texts") or {}
    for name, info in meta.items():
        text = texts.get(name)
        if text is None:
            raise MissingText(name, f"the {name} text is not available")
        if text_digest(text) != info.get("sha256"):
            raise MissingText(name, f"the {name} text here is not the one that was sent "
                                    f"(digest {info.get('sha256')})")

    def ref(x: dict) -> str:
        return (texts.get(x["$text"]) or "")[int(x.get("start", 0)):int(x.get("end", 0))]

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if "$text" in x and set(x) <= {"$text", "start", "end"}:
                return ref(x)
            if set(x) == {"$concat"}:
                return "".join(ref(p) if isinstance(p, dict) else str(p) for p in x["$concat"])
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(recorded.get("body"))
