"""A multi-agent run's bundle: its events carry what a strict replay needs (every agent's
steps, the receipts' rewrites beside each step's own program, and the ``agents_ended`` event
with the coordinator's journal and turn order), so after export and import on an emptied
database the IDE replays it strictly with nothing of the world executed, and the core
replays the bundle file itself (``replay:FILE``) the same way."""

from __future__ import annotations

import pytest

from spellide.spell import api
from spellide.web.bundles import export_bundle, import_bundle
from spellide.web.models import RunEvent
from spellide.web.runner.replay import replay_run

from .agent_runtime import demo_params
from .conftest import finish
from .test_agents_demos import DEMOS, comparable_steps, quick_demos, shape, start  # noqa: F401  (quick_demos is a fixture)
from .test_bundles import emptied_database
from .test_controls import client  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("name", demo_params({"agents-auction": None, "agents-telephone": None}))
def test_an_agent_demos_bundle_replays_strictly_after_import(client, user, quick_demos, name, tmp_path):
    src = finish(start(client, name), 90)
    assert src.status == "finished", src.error
    raw = api.dump_bundle(export_bundle(src, user))
    path = tmp_path / "run.spellide.json.gz"
    path.write_bytes(raw)
    emptied_database()

    imported = import_bundle(api.load_bundle_bytes(raw), user)
    assert RunEvent.objects.filter(run=imported, type=api.events.AGENTS_ENDED).count() == 1
    rep = finish(replay_run(imported, user, strict=True), 90)
    assert (rep.status, rep.value) == ("finished", imported.value), rep.error
    assert rep.totals["effects_executed"] == 0
    both = comparable_steps(imported, rep)
    assert rep.totals["effects_reused"] >= len(both) > 1
    assert shape(rep, both) == shape(imported, both)

    # the core reads the bundle file as a record (the CLI's --model replay:FILE --strict)
    record = api.Record.load(path)
    assert record.turns["order"] and len(record.agents) == len(DEMOS[name][0])
    config = api.RunConfig.from_json(record.config)
    config.cache_mode = "strict"
    result = api.execute_with_deep_stack(
        api.Run(config, model=api.NoLiveModel(record.model_settings), record=record).execute)
    assert (result.error, result.value_text) == (None, src.value)
    assert result.effects_executed == 0 and result.effects_reused >= len(both)
