"""URLs. Pages (run list, run page, step views, share view...) live in ``urls_pages``; this
module owns sign-in and the control endpoints (``views.controls``).

Accounts: ``accounts/login/`` (rate-limited: ``views.auth``), ``accounts/logout/`` (POST),
``accounts/password_change/`` (+ ``done/``) for a signed-in user. Password reset is not
routed: it mails a link, and a self-hosted spellide has no mail set up (an administrator
sets a password with ``manage.py changepassword``).

Control endpoints (all POST, login + CSRF + owner checks; htmx requests get a fragment, others
a redirect to the run page):

  run_start            /runs/start/
  run_pause            /runs/<uuid>/pause/          run_resume   /runs/<uuid>/resume/
  run_step             /runs/<uuid>/step/           run_stop     /runs/<uuid>/stop/
  run_edit             /runs/<uuid>/edit/           (text, [step=1])
  run_approve          /runs/<uuid>/approve/        run_reject   /runs/<uuid>/reject/
  run_fork             /runs/<uuid>/fork/           (step, [text, point])
  run_resume_interrupted  /runs/<uuid>/resume-interrupted/
  run_share            /runs/<uuid>/share/          run_unshare  /runs/<uuid>/unshare/
  run_status           /runs/<uuid>/status.json     (GET: status, last_seq, pause, totals)
  run_rename           /runs/<uuid>/rename/         (title)     run_tags  /runs/<uuid>/tags/ (tags)
  run_delete           /runs/<uuid>/delete/         (a run that is not active; records, journal, workspace)
"""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from .views import controls
from .views.auth import RateLimitedLoginView

urlpatterns = [
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(),
         name="password_change_done"),
    path("runs/start/", controls.start, name="run_start"),
    path("runs/<uuid:public_id>/pause/", controls.pause, name="run_pause"),
    path("runs/<uuid:public_id>/resume/", controls.resume, name="run_resume"),
    path("runs/<uuid:public_id>/step/", controls.step, name="run_step"),
    path("runs/<uuid:public_id>/stop/", controls.stop, name="run_stop"),
    path("runs/<uuid:public_id>/edit/", controls.edit, name="run_edit"),
    path("runs/<uuid:public_id>/approve/", controls.approve, name="run_approve"),
    path("runs/<uuid:public_id>/reject/", controls.reject, name="run_reject"),
    path("runs/<uuid:public_id>/fork/", controls.fork, name="run_fork"),
    path("runs/<uuid:public_id>/resume-interrupted/", controls.resume_interrupted_view,
         name="run_resume_interrupted"),
    path("runs/<uuid:public_id>/share/", controls.share, name="run_share"),
    path("runs/<uuid:public_id>/unshare/", controls.unshare, name="run_unshare"),
    path("runs/<uuid:public_id>/status.json", controls.status, name="run_status"),
    path("runs/<uuid:public_id>/rename/", controls.rename, name="run_rename"),
    path("runs/<uuid:public_id>/tags/", controls.set_tags, name="run_tags"),
    path("runs/<uuid:public_id>/delete/", controls.delete, name="run_delete"),
]

urlpatterns += [path("", include("spellide.web.urls_pages"))]

handler400 = "spellide.web.views.errors.bad_request"
