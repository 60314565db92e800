"""URLs of the IDE's pages (included by ``spellide.web.urls``).

Every run URL has a share twin under ``/share/<token>/`` with the same suffix, served by a
login-exempt copy of the same view in read-only mode; templates build step links from a base
prefix, so the two trees must keep identical suffixes.
"""

from django.urls import path

from spellide.web.views import transfer as x
from spellide.web.views import charts as c
from spellide.web.views import compare as cmp
from spellide.web.views import live, pages as v
from spellide.web.views import review as rv

RUN = "runs/<uuid:public_id>/"
SHARE = "share/<str:token>/"

urlpatterns = [
    path("", v.run_list, name="run_list"),
    path("highlight/", v.highlight_preview, name="spell_highlight"),
    path("runs/replayable/", v.replay_choices, name="replay_choices"),
    path(RUN, v.run_page, name="run_detail"),
    path(RUN + "steps/<int:step_id>/", v.run_page, name="run_step_detail"),
    path(RUN + "steps/<int:step_id>/tab/<str:tab>/", v.step_tab, name="step_tab"),
    path(RUN + "steps/<int:step_id>/tree/", v.tree_node, name="step_tree_node"),
    path(RUN + "steps/<int:step_id>/text/<str:part>/", v.step_text, name="step_text"),
    path(RUN + "window/", v.step_window, name="step_window"),
    path(RUN + "steps/search/", v.step_search, name="step_search"),
    path(RUN + "live/", live.live_state, name="run_live_state"),
    path(RUN + "effects/", v.run_effects, name="run_effects"),
    path(RUN + "effects/<int:effect_id>/<str:part>/", v.effect_raw, name="effect_raw"),
    path(RUN + "forks/", v.run_forks, name="run_forks"),
    path(RUN + "setup/", v.run_setup, name="run_setup"),
    path(RUN + "charts/", c.run_charts, name="run_charts"),
    path(RUN + "compare/<uuid:other_id>/", cmp.compare, name="run_compare"),
    path("compare/", cmp.compare_pick, name="compare_pick"),
    path(RUN + "review/", rv.run_review, name="run_review"),
    path(RUN + "review/comment/", rv.comment, name="review_comment"),
    path(RUN + "review/verdict/", rv.verdict, name="review_verdict"),
    path(RUN + "review/link/", rv.review_link, name="review_link"),
    path(RUN + "review/unlink/", rv.review_link, {"revoke": True}, name="review_unlink"),
    path(RUN + "steps/<int:step_id>/review/", rv.step_panel, name="step_review"),
    path("review/threads/<int:thread_id>/reply/", rv.thread_reply, name="review_reply"),
    path("review/threads/<int:thread_id>/resolve/", rv.thread_resolve, {"resolved": True}, name="review_resolve"),
    path("review/threads/<int:thread_id>/reopen/", rv.thread_resolve, {"resolved": False}, name="review_reopen"),
    path("review/<str:token>/", rv.join, name="review_join"),
    path(RUN + "export/otel.json", x.otel_json, name="run_export_otel"),
    path(RUN + "export/atif.json", x.atif_json, name="run_export_atif"),
    path(RUN + "export/bundle.spellide.json.gz", x.bundle_file, name="run_export_bundle"),
    path(RUN + "replay/", x.replay, name="run_replay"),
    path("runs/import/", x.import_run, name="run_import"),
    path("runs/import-trace/", x.import_trace, name="trace_import"),
    path(SHARE, v.share_page, name="run_shared"),
    path(SHARE + "steps/<int:step_id>/", v.share_page, name="share_step"),
    path(SHARE + "steps/<int:step_id>/tab/<str:tab>/", v.share_tab, name="share_step_tab"),
    path(SHARE + "steps/<int:step_id>/tree/", v.share_tree_node, name="share_tree_node"),
    path(SHARE + "steps/<int:step_id>/text/<str:part>/", v.share_step_text, name="share_step_text"),
    path(SHARE + "window/", v.share_window, name="share_window"),
    path(SHARE + "steps/search/", v.share_step_search, name="share_step_search"),
    path(SHARE + "live/", live.share_live_state, name="share_live_state"),
    path(SHARE + "effects/", v.share_effects, name="share_effects"),
    path(SHARE + "effects/<int:effect_id>/<str:part>/", v.share_effect_raw, name="share_effect_raw"),
    path(SHARE + "forks/", v.share_forks, name="share_forks"),
    path(SHARE + "setup/", v.share_setup, name="share_setup"),
    path(SHARE + "charts/", c.share_charts, name="share_charts"),
    path(SHARE + "export/otel.json", x.share_otel_json, name="share_export_otel"),
    path(SHARE + "export/atif.json", x.share_atif_json, name="share_export_atif"),
    path(SHARE + "export/bundle.spellide.json.gz", x.share_bundle_file, name="share_export_bundle"),
]
