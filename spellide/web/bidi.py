"""Visible bidirectional-control characters in run text (issue 11 item 6).

U+202A-U+202E, U+2066-U+2069, U+200E/U+200F and U+061C reorder the text around them without
being seen: a program can show one thing and do another ("Trojan source"). Wherever run text
is shown, each such character is replaced by a visible marker,
``<span class="bidi" title="U+202E">⟨U+202E⟩</span>``.

Run text reaches the HTML by many routes (every ``{{ }}`` in the templates, Pygments' output,
fragments built in Python), all of them escaped, so the one place that sees all of it is the
finished HTML: ``mark_html`` rewrites it once, for pages (``BidiMarkMiddleware``) and for the
fragments pushed over the websocket (``fragments.render_event_html``). Because everything from
a run is escaped, a raw ``<`` in that HTML is always the template's own markup, which is what
makes the rewrite safe: between tags a marker element goes in; inside a tag (an attribute
value), in ``<title>`` and in ``<option>`` only the marker's text (no element may go there).
Text a person edits is left exactly as it is (``<textarea>``, ``<input>`` values, and the
highlighted copy under an editor's textarea, ``.editor-hl``), since a marker there would
change what is sent back, or misalign the copy with the caret. Plain-text views (raw step text, effect results) are left alone too.
"""

from __future__ import annotations

import re
from typing import Callable

from django.http import HttpRequest, HttpResponse

BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_TOKEN = re.compile(
    r"(?P<keep><(?P<raw>textarea|script|style)\b[^>]*>.*?</(?P=raw)\s*>"
    r"|<pre\b[^>]*\beditor-hl\b[^>]*>.*?</pre\s*>|<input\b[^>]*>|<!--.*?-->)"
    r"|(?P<open><(?P<plain>title|option)\b[^>]*>)(?P<inner>.*?)(?P<close></(?P=plain)\s*>)"
    r"|(?P<tag><[^>]*>)", re.S | re.I)


def _code(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _as_text(m: re.Match) -> str:
    return f"⟨{_code(m.group(0))}⟩"


def _as_element(m: re.Match) -> str:
    code = _code(m.group(0))
    return f'<span class="bidi" title="{code}">⟨{code}⟩</span>'


def mark_html(html: str) -> str:
    """``html`` (escaped markup) with every bidi control character made visible."""
    if not BIDI.search(html):
        return html
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(html):
        out.append(BIDI.sub(_as_element, html[pos:m.start()]))
        if m.group("keep") is not None:
            out.append(m.group("keep"))
        elif m.group("open") is not None:
            out.append(BIDI.sub(_as_text, m.group("open")) + BIDI.sub(_as_text, m.group("inner"))
                       + m.group("close"))
        else:
            out.append(BIDI.sub(_as_text, m.group("tag")))
        pos = m.end()
    out.append(BIDI.sub(_as_element, html[pos:]))
    return "".join(out)


class BidiMarkMiddleware:
    """``mark_html`` on every HTML page and fragment the views answer with."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (response.get("Content-Type", "").startswith("text/html") and not response.streaming
                and not response.has_header("Content-Encoding")):
            charset = response.charset or "utf-8"
            text = response.content.decode(charset, errors="surrogateescape")
            if BIDI.search(text):
                response.content = mark_html(text).encode(charset, errors="surrogateescape")
                if response.has_header("Content-Length"):
                    response["Content-Length"] = str(len(response.content))
        return response
