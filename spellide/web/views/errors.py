"""The 400 handler: a request Django refuses before any view runs (a form over the upload
limit, too many fields) gets a page in the app's style that says what was too big and what
the limit is, instead of Django's bare "Bad Request (400)"."""

from __future__ import annotations

from typing import Optional

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.html import format_html


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} KB"


def bad_request(request: HttpRequest, exception: Optional[Exception] = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        status, title = 413, "Too large to send"
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = (f"The form was larger than the server accepts ({_size(limit)} per request, "
                   f"the DATA_UPLOAD_MAX_MEMORY_SIZE setting), so nothing was saved and no run was "
                   f"started. Shorten the prompt or program, or put long input in a file of the "
                   f"run's workspace and have the program read it.")
    elif isinstance(exception, TooManyFieldsSent):
        status, title = 400, "Too many fields"
        message = (f"The form had more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields "
                   f"(DATA_UPLOAD_MAX_NUMBER_FIELDS), so the server did not read it.")
    else:
        status, title = 400, "Bad request"
        message = "The server could not understand this request."
    if request.headers.get("HX-Request") == "true":
        return HttpResponse(format_html('<span class="control-result refused" data-ok="false">{}: {}</span>',
                                        title, message), status=status)
    # No RequestContext: its processors would read the request (CSRF token, messages), and
    # reading the body is what failed.
    html = render_to_string("spellide/request_error.html", {"title": title, "message": message,
                                                             "status": status})
    return HttpResponse(html, status=status)
