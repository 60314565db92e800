"""Template filters for showing run text.

Everything here returns plain strings (which autoescape then escapes) except ``spell``, whose
output comes from Pygments' HTML formatter (it escapes every character itself). Nothing marks
run text safe by any other route.
Bidirectional-control characters are made visible once, in the finished HTML of every page and
fragment (``spellide.web.bidi``), not filter by filter.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Optional

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString

from spellide.web.highlight import highlight

register = template.Library()

_WS = re.compile(r"\s+")


@register.filter
def spell(text: Optional[str]) -> SafeString | str:
    """Spell source as highlighted HTML (escaped by Pygments)."""
    if not text:
        return ""
    return highlight(text)


@register.filter
def oneline(text: Optional[str], limit: int = 90) -> str:
    """Whitespace collapsed and cut, for fixed-height rows. Reads at most a few times
    ``limit`` characters so megabyte completions cost nothing here."""
    if not text:
        return ""
    piece = _WS.sub(" ", text[: int(limit) * 4]).strip()
    if len(piece) > int(limit) or len(text) > int(limit) * 4:
        return piece[: int(limit)].rstrip() + "…"
    return piece


@register.filter
def head(text: Optional[str], limit: int = 2000) -> str:
    """The first ``limit`` characters (the page links to the full text when cut)."""
    if not text:
        return ""
    return text[: int(limit)]


@register.filter
def longer(text: Optional[str], limit: int = 2000) -> bool:
    return bool(text) and len(text) > int(limit)


@register.filter
def ms(value: Any) -> str:
    """A duration in milliseconds, readably."""
    if value is None or value == "":
        return ""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    if v == 0:
        return "0 ms"
    if v < 1:
        return f"{v:.2f} ms"
    if v < 1000:
        return f"{v:.0f} ms"
    if v < 60_000:
        return f"{v / 1000:.1f} s"
    return f"{v / 60_000:.1f} min"


@register.filter
def usd(value: Any) -> str:
    try:
        v = float(value or 0)
    except (TypeError, ValueError):
        return ""
    if v == 0:
        return "$0"
    return f"${v:.4f}" if v < 1 else f"${v:.2f}"


@register.filter
def epoch(value: Any) -> Optional[dt.datetime]:
    """A ``time.time()`` float as an aware datetime (for the ``date`` filter)."""
    try:
        return dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@register.filter
def since(start: Optional[dt.datetime], end: Optional[dt.datetime] = None) -> str:
    if start is None:
        return ""
    end = end or timezone.now()
    return ms((end - start).total_seconds() * 1000)


@register.filter
def get(mapping: Any, key: Any) -> Any:
    try:
        return mapping.get(key) if mapping is not None else None
    except AttributeError:
        return None


@register.filter
def intcomma(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value or "")


@register.filter
def model_label(spec: Optional[str]) -> str:
    """``scripted:/long/path/demo.json`` -> ``scripted: demo.json`` (paths are noise here)."""
    if not spec:
        return ""
    kind, sep, rest = str(spec).partition(":")
    if sep and ("/" in rest or "\\" in rest):
        return f"{kind}: {rest.replace(chr(92), '/').rsplit('/', 1)[-1]}"
    return str(spec)


@register.filter
def logbar(value: Any) -> int:
    """A duration as 0-100 in steps of 5 on a log scale (1 ms -> 0, 100 s -> 100): the width
    of the small timing bar behind each step row (a class ``w<N>``, as the CSP allows no style
    attributes), comparable across rows without knowing the longest."""
    import math
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0
    if v <= 1:
        return 0
    return max(0, min(100, 5 * round(math.log10(v) * 4)))


@register.inclusion_tag("spellide/step_search.html#step_search_form")
def step_search_form(nav: Any) -> dict:
    """The step search of the run page's steps pane (``views.pages.step_search`` answers it)."""
    from spellide.web.run_search import StepSearchForm
    return {"nav": nav, "search": StepSearchForm()}
