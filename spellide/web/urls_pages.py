"""URLs of the IDE's pages (included by ``spellide.web.urls``).

Every run URL has a share twin under ``/share/<token>/`` with the same suffix, served by a
login-exempt copy of the same view in read-only mode; templates build step links from a base
prefix, so the two trees must keep identical suffixes.
"""

from django.urls import path

from spellide.web.views import live, pages as v

RUN = "runs/<uuid:public_id>/"
SHARE = "share/<str:token>/"

urlpatterns = [
    path("", v.run_list, name="run_list"),
    path("highlight/", v.highlight_preview, name="spell_highlight"),
    path(RUN, v.run_page, name="run_detail"),
    path(RUN + "steps/<int:step_id>/", v.run_page, name="run_step_detail"),
    path(RUN + "steps/<int:step_id>/tab/<str:tab>/", v.step_tab, name="step_tab"),
    path(RUN + "steps/<int:step_id>/tree/", v.tree_node, name="step_tree_node"),
    path(RUN + "steps/<int:step_id>/text/<str:part>/", v.step_text, name="step_text"),
    path(RUN + "window/", v.step_window, name="step_window"),
    path(RUN + "live/", live.live_state, name="run_live_state"),
    path(RUN + "effects/", v.run_effects, name="run_effects"),
    path(RUN + "effects/<int:effect_id>/<str:part>/", v.effect_raw, name="effect_raw"),
    path(RUN + "forks/", v.run_forks, name="run_forks"),
    path(RUN + "setup/", v.run_setup, name="run_setup"),
    path(SHARE, v.share_page, name="run_shared"),
    path(SHARE + "steps/<int:step_id>/", v.share_page, name="share_step"),
    path(SHARE + "steps/<int:step_id>/tab/<str:tab>/", v.share_tab, name="share_step_tab"),
    path(SHARE + "steps/<int:step_id>/tree/", v.share_tree_node, name="share_tree_node"),
    path(SHARE + "steps/<int:step_id>/text/<str:part>/", v.share_step_text, name="share_step_text"),
    path(SHARE + "window/", v.share_window, name="share_window"),
    path(SHARE + "live/", live.share_live_state, name="share_live_state"),
    path(SHARE + "effects/", v.share_effects, name="share_effects"),
    path(SHARE + "effects/<int:effect_id>/<str:part>/", v.share_effect_raw, name="share_effect_raw"),
    path(SHARE + "forks/", v.share_forks, name="share_forks"),
    path(SHARE + "setup/", v.share_setup, name="share_setup"),
]
