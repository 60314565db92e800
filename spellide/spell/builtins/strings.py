"""The ``strings/`` namespace (Clojure's ``clojure.string`` plus a few helpers).

Deviation, chosen for the users who write these programs: ``strings/split`` and
``strings/replace`` accept a plain string as a *literal* separator/match (Clojure requires a
regex for ``split``); a regex literal ``#"..."`` works as in Clojure. In regex replacements,
``$1`` refers to group 1 as in Java.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from . import builtin, namespace
from .core import (Char, _check_str, _int, match_value, re_find, re_matches, re_seq, regex,
                   subs, to_str)
from ..data import Builtin, Regex, Vector, compile_regex
from ..evaluator import apply_fn
from ..limits import check_size, limited, str_bytes

_T: dict[str, Builtin] = {}


def _s(x: Any, name: str) -> str:
    return _check_str(x, f"strings/{name}")


def _needle(x: Any, name: str) -> str:
    if type(x) is Char:
        return x.c
    return _s(x, name)


@builtin("index-of", table=_T, doc="(index-of s value [from]): index of value in s, or nil")
def index_of(s: Any, value: Any, start: Any = 0) -> Any:
    i = _s(s, "index-of").find(_needle(value, "index-of"), _int(start, "index-of"))
    return None if i < 0 else i


@builtin("last-index-of", table=_T, doc="(last-index-of s value [from]): last index, or nil")
def last_index_of(s: Any, value: Any, start: Any = None) -> Any:
    s = _s(s, "last-index-of")
    v = _needle(value, "last-index-of")
    i = s.rfind(v) if start is None else s.rfind(v, 0, _int(start, "last-index-of") + len(v))
    return None if i < 0 else i


@builtin("starts-with?", table=_T, doc="Does s start with substr?")
def starts_with(s: Any, sub: Any) -> bool:
    return _s(s, "starts-with?").startswith(_s(sub, "starts-with?"))


@builtin("ends-with?", table=_T, doc="Does s end with substr?")
def ends_with(s: Any, sub: Any) -> bool:
    return _s(s, "ends-with?").endswith(_s(sub, "ends-with?"))


@builtin("includes?", table=_T, doc="Does s contain substr?")
def includes(s: Any, sub: Any) -> bool:
    return _needle(sub, "includes?") in _s(s, "includes?")


@builtin("blank?", table=_T, doc="Is s nil, empty or only whitespace?")
def blank(s: Any) -> bool:
    return s is None or not _s(s, "blank?").strip()


@builtin("trim", table=_T, doc="Remove whitespace at both ends")
def trim(s: Any) -> str:
    return _s(s, "trim").strip()


@builtin("triml", table=_T, doc="Remove whitespace at the start")
def triml(s: Any) -> str:
    return _s(s, "triml").lstrip()


@builtin("trimr", table=_T, doc="Remove whitespace at the end")
def trimr(s: Any) -> str:
    return _s(s, "trimr").rstrip()


@builtin("trim-newline", table=_T, doc="Remove trailing newlines and carriage returns")
def trim_newline(s: Any) -> str:
    return _s(s, "trim-newline").rstrip("\r\n")


def _java_replacement(rep: str) -> str:
    """Java's ``$1`` group references to Python's ``\\g<1>``; ``\\$`` is a literal dollar."""
    out = []
    i = 0
    while i < len(rep):
        c = rep[i]
        if c == "\\" and i + 1 < len(rep):
            out.append(rep[i + 1].replace("\\", "\\\\"))
            i += 2
            continue
        if c == "$" and i + 1 < len(rep) and rep[i + 1].isdigit():
            j = i + 1
            while j < len(rep) and rep[j].isdigit():
                j += 1
            out.append(f"\\g<{rep[i + 1:j]}>")
            i = j
            continue
        out.append("\\\\" if c == "\\" else c)
        i += 1
    return "".join(out)


def _replace(ctx: Any, env: Any, s: Any, match: Any, rep: Any, count: int, name: str) -> str:
    s = _s(s, name)
    if type(match) is Char:
        match = match.c
    if type(rep) is Char:
        rep = rep.c
    if type(match) is str:
        if type(rep) is not str:
            raise TypeError(f"strings/{name}: replacement for a string match must be a string")
        if len(rep) > len(match):
            n = s.count(match) if count == 0 else min(count, 1)
            check_size(sys.getsizeof(s) + n * sys.getsizeof(rep), f"strings/{name}")
        return s.replace(match, rep, -1 if count == 0 else count)
    pattern = regex(match)
    if type(rep) is str:
        return limited(pattern.sub, _java_replacement(rep), s, count=count)
    return limited(pattern.sub, lambda m: to_str(apply_fn(rep, [match_value(m)], env, ctx)), s,
                   count=count)


@builtin("replace", table=_T, ctx=True,
         doc="(replace s match replacement): every match replaced (match: string or regex; "
             "replacement: string, with $1 for groups, or a function of the match)")
def replace(ctx: Any, env: Any, s: Any, match: Any, rep: Any) -> str:
    return _replace(ctx, env, s, match, rep, 0, "replace")


@builtin("replace-first", table=_T, ctx=True, doc="Like replace, first match only")
def replace_first(ctx: Any, env: Any, s: Any, match: Any, rep: Any) -> str:
    return _replace(ctx, env, s, match, rep, 1, "replace-first")


@builtin("split", table=_T, doc="(split s sep [limit]): vector of parts; sep is a regex, "
                                "given as a regex or a string (\"\\\\s+\"), as in the reference "
                                "and Java; a character splits literally; trailing empty parts "
                                "dropped")
def split(s: Any, sep: Any, limit: Any = None) -> Vector:
    s = _s(s, "split")
    # a string separator is a regex, as in the reference; a character splits literally
    pattern = compile_regex(re.escape(sep.c)) if type(sep) is Char else regex(sep)
    lim = 0 if limit is None else _int(limit, "split")
    if pattern.pattern == "" or (type(sep) is Regex and sep.pattern == ""):
        parts = list(s)
        if lim > 0 and len(parts) > lim:
            parts = parts[: lim - 1] + ["".join(parts[lim - 1:])]
        return Vector(parts)
    parts = limited(pattern.split, s, maxsplit=max(0, lim - 1)) if lim > 0 else limited(pattern.split, s)
    if pattern.groups:  # Java split does not return captured groups
        step = pattern.groups + 1
        parts = parts[::step]
    if lim == 0:
        while parts and parts[-1] == "":
            parts.pop()
        if not parts:
            parts = [""] if s == "" else []
    return Vector(parts)


@builtin("split-lines", table=_T, doc="Vector of the lines of s")
def split_lines(s: Any) -> Vector:
    parts = re.split(r"\r?\n", _s(s, "split-lines"))
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return Vector(parts)


@builtin("join", table=_T, doc="(join [sep] coll): the elements as strings, joined")
def join(a: Any, b: Any = None) -> str:
    from .core import items
    if b is None and not isinstance(a, str):
        parts = [to_str(x) for x in items(a)]
        check_size(str_bytes(parts), "strings/join")
        return "".join(parts)
    sep = to_str(a)
    parts = [to_str(x) for x in items(b)]
    check_size(str_bytes(parts) + len(parts) * sys.getsizeof(sep), "strings/join")
    return sep.join(parts)


@builtin("lower-case", table=_T, doc="s in lower case")
def lower_case(s: Any) -> str:
    return _s(s, "lower-case").lower()


@builtin("upper-case", table=_T, doc="s in upper case")
def upper_case(s: Any) -> str:
    return _s(s, "upper-case").upper()


@builtin("capitalize", table=_T, doc="First character upper case, the rest lower case")
def capitalize(s: Any) -> str:
    s = _s(s, "capitalize")
    return s[:1].upper() + s[1:].lower()


@builtin("reverse", table=_T, doc="s reversed")
def reverse(s: Any) -> str:
    return _s(s, "reverse")[::-1]


@builtin("escape", table=_T, doc="(escape s cmap): characters replaced by (cmap char) when "
                                 "it is not nil")
def escape(s: Any, cmap: Any) -> str:
    from .core import get
    out = []
    for c in _s(s, "escape"):
        r = get(cmap, Char(c))
        out.append(c if r is None else to_str(r))
    return "".join(out)


_T["subs"] = Builtin("subs", subs, doc="(subs s start [end]) substring")
_T["re-find"] = Builtin("re-find", re_find, doc="First regex match in s, or nil")
_T["re-matches"] = Builtin("re-matches", re_matches, doc="Regex match of the whole s, or nil")
_T["re-seq"] = Builtin("re-seq", re_seq, doc="All regex matches in s (nil if none)")


def make_namespace() -> Any:
    return namespace("strings", _T, overview="String functions (clojure.string): "
                     "(strings/trim s), (strings/split s \",\"), (strings/join \", \" xs)...")
