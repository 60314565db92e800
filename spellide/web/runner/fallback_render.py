"""A minimal rendering of one run event as an htmx 4 websocket fragment.

Used until (or when) ``spellide.web.fragments.render_event_html`` is not available. Every
string from the run is escaped; long strings are shortened so a frame stays small.
"""

from __future__ import annotations

import json
from typing import Any

from django.utils.html import escape

MAX_STRING = 2000


def _shorten(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + f"… ({len(value)} chars)"
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    return value


def render_event_html(run: Any, event: dict[str, Any]) -> str:
    seq = int(event.get("seq") or 0)
    typ = str(event.get("type") or "")
    body = json.dumps(_shorten(event.get("data") or {}), ensure_ascii=False, sort_keys=True)
    return (f'<hx-partial hx-target="#events" hx-swap="beforeend">'
            f'<pre class="event event-{escape(typ)}" data-seq="{seq}" data-type="{escape(typ)}">'
            f'{seq} {escape(typ)} {escape(body)}</pre></hx-partial>')
