"""Run bundles: one versioned file that takes a run from one spellide to another.

A bundle holds what the IDE stored of a run (its steps, effects, edits and events) with every
long text in one delta-encoded text table, the way the IDE stores program versions: entry ``i``
is ``[kind, base, keep, tail, sha256]`` and its text is ``text(base)[:keep] + tail`` (a
snapshot has no base). Successive programs share almost all their text, so a bundle grows with
the new text of each step rather than with steps x program size. Rows and events name texts as
``{"$v": i}``.

The core reads bundles too: ``record_of_bundle`` rebuilds the run's record from the bundle's
events (exactly as the IDE rebuilds a record from its own events for crash-resume), so
``spellide run --model replay:BUNDLE --strict`` replays an exported run offline. Writing a
bundle is the IDE's job (it owns the storage); this module defines the format and reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Optional

FORMAT = "spellide-bundle"
VERSION = 1
MAX_BUNDLE_BYTES = 512 * 1024 ** 2   # a bundle or record file (or upload) larger than this is refused


class BundleError(ValueError):
    """A file that is not a readable bundle; the message says what is wrong."""


def is_bundle(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


def check(data: Any) -> dict[str, Any]:
    """``data`` if it is a bundle this build reads, else a ``BundleError`` saying why."""
    if not is_bundle(data):
        raise BundleError(f'not a spellide run bundle (expected a JSON object with "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise BundleError(f"unsupported bundle version {data.get('version')!r} (this build reads {VERSION})")
    for key, kind in (("run", dict), ("texts", list), ("events", list)):
        if not isinstance(data.get(key), kind):
            raise BundleError(f"bundle field {key!r} is missing or not a {kind.__name__}")
    TextTable(data["texts"]).validate()
    return data


def load(path: str | Path) -> dict[str, Any]:
    """Read a bundle file (JSON, or gzip-compressed JSON)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise BundleError(f"bundle file not found: {p}") from None
    if size > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle file {p} is {size} bytes; the limit is {MAX_BUNDLE_BYTES}")
    return loads(p.read_bytes(), str(p))


def loads(raw: bytes, where: str = "bundle") -> dict[str, Any]:
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise BundleError(f"{where}: not a readable gzip file ({e})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BundleError(f"{where}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{where}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    return check(data)


def dumps(data: dict[str, Any], compress: bool = True) -> bytes:
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class TextTable:
    """The bundle's text table, rebuilt on demand. Texts are kept in a bounded cache: a chain is
    rebuilt from its nearest cached ancestor, and readers go through texts in order, so the
    previous version is nearly always at hand."""

    CACHE_CHARS = 64 * 1024 * 1024

    def __init__(self, entries: list[Any]):
        self.entries = entries
        self._cache: "OrderedDict[int, str]" = OrderedDict()
        self._size = 0

    def validate(self) -> None:
        for i, e in enumerate(self.entries):
            if not (isinstance(e, list) and len(e) == 5 and isinstance(e[3], str)
                    and isinstance(e[2], int) and (e[1] is None or isinstance(e[1], int))):
                raise BundleError(f"text {i}: expected [kind, base, keep, tail, sha256]")
            if e[1] is not None and not 0 <= e[1] < i:
                raise BundleError(f"text {i}: its base {e[1]} must be an earlier text")

    def text(self, i: int) -> str:
        if not isinstance(i, int) or not 0 <= i < len(self.entries):
            raise BundleError(f"text reference {i!r} is not in the bundle's text table")
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        chain = []
        j: Optional[int] = i
        base_text = ""
        while j is not None:
            cached = self._cache.get(j)
            if cached is not None:
                base_text = cached
                break
            chain.append(j)
            j = self.entries[j][1]
        for k in reversed(chain):
            _kind, base, keep, tail, _sha = self.entries[k]
            base_text = (base_text[:keep] if base is not None else "") + tail
            self._put(k, base_text)
        return base_text

    def _put(self, i: int, text: str) -> None:
        self._cache[i] = text
        self._size += len(text)
        while self._size > self.CACHE_CHARS and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._size -= len(old)

    def expand(self, data: Any) -> Any:
        """``data`` with every ``{"$v": i}`` replaced by text ``i``."""
        if isinstance(data, dict):
            if len(data) == 1 and "$v" in data:
                return self.text(data["$v"])
            return {k: self.expand(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.expand(v) for v in data]
        return data


def events_of(data: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The bundle's events in order, texts expanded."""
    table = TextTable(data["texts"])
    for e in sorted(data["events"], key=lambda e: e["seq"]):
        yield {"seq": e["seq"], "type": e["type"], "ts": e.get("ts", 0.0), "data": table.expand(e.get("data") or {})}


def record_of_bundle(data: dict[str, Any]) -> Any:
    """The run's record (for replay), rebuilt from the bundle's events."""
    from .record import Record
    return Record.from_events(events_of(check(data)))
