"""Sign-in with a limit on failed attempts.

After ``SPELLIDE_LOGIN_FAILURES`` failed sign-ins for one username from one address within
``SPELLIDE_LOGIN_WINDOW`` seconds, further attempts for that pair are answered 429 (without
checking the password) until the window that began with the first failure ends; a successful
sign-in clears the count. The counts live in Django's cache (per process by default; shared
through Redis in scale mode, see settings).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse


def _key(request: HttpRequest) -> str:
    username = str(request.POST.get("username", "")).strip().lower()
    address = str(request.META.get("REMOTE_ADDR", ""))
    digest = hashlib.sha256(f"{username}\0{address}".encode()).hexdigest()
    return f"spellide:login-failures:{digest}"


class RateLimitedLoginView(LoginView):
    """Django's LoginView, refusing a username+address pair with too many recent failures."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if int(cache.get(_key(request)) or 0) >= settings.SPELLIDE_LOGIN_FAILURES:
            minutes = max(1, round(settings.SPELLIDE_LOGIN_WINDOW / 60))
            # unbound: a bound form's errors would check the password after all
            form = self.get_form_class()(self.request, initial={"username": request.POST.get("username", "")})
            return self.render_to_response(
                self.get_context_data(form=form, throttled=(
                    f"Too many failed sign-ins for this username from your address: try again "
                    f"in up to {minutes} minute{'s' if minutes != 1 else ''}.")), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        key = _key(self.request)
        cache.add(key, 0, timeout=settings.SPELLIDE_LOGIN_WINDOW)  # the window starts here
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.SPELLIDE_LOGIN_WINDOW)
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        cache.delete(_key(self.request))
        return super().form_valid(form)
