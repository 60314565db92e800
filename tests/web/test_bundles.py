"""Run bundles: export -> import on an emptied database -> the run browses as before, forks,
and replays strictly offline with the same values, programs and effect results and zero
effects executed; damaged bundles are refused with a message and write nothing."""

from __future__ import annotations

import gzip
import html
import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from spellide.spell import api
from spellide.web import runner
from spellide.web.bundles import export_bundle, import_bundle
from spellide.web.models import Effect, ProgramVersion, Run, RunEvent, Step, clear_text_cache
from spellide.web.runner.replay import replay_run

from .conftest import finish
from .test_runner import IO_SCRIPT, io_config

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot(run: Run) -> dict:
    """What a person sees of a run, without database keys."""
    steps = [(s.step_id, s.parent, s.depth, s.status, s.prefix_text(), s.completion, s.program_text(),
              s.value, s.error) for s in Step.objects.filter(run=run).order_by("step_id")]
    effects = [(e.step_id, e.ordinal, e.name, e.args_text(), e.result, e.status, e.args_digest)
               for e in Effect.objects.filter(run=run).order_by("seq", "id")]
    events = [(e.seq, e.type) for e in RunEvent.objects.filter(run=run).order_by("seq")]
    return {"steps": steps, "effects": effects, "events": events, "value": run.value,
            "status": run.status, "totals": run.totals}


@pytest.fixture
def fork_with_edit(user, scripted, tmp_path):
    parent = finish(runner.start_run(user, io_config(scripted, tmp_path), "io"))
    program = Step.objects.get(run=parent, step_id=1).program_text()
    edited = program.replace('"notes.txt"', '"notes2.txt"')
    assert edited != program
    fork = finish(runner.fork_run(parent, user, 1, text=edited))
    assert fork.status == Run.Status.FINISHED, fork.error
    return parent, fork


def emptied_database() -> None:
    Run.objects.all().delete()
    clear_text_cache()


def test_round_trip_browses_forks_and_replays_strictly_offline(client, user, fork_with_edit):
    parent, fork = fork_with_edit
    before = snapshot(Run.objects.get(pk=fork.pk))
    raw = api.dump_bundle(export_bundle(fork, user))
    stored = sum(len(t) for t in ProgramVersion.objects.filter(run=fork).values_list("tail", flat=True))
    emptied_database()

    data = api.load_bundle_bytes(raw)
    assert [x["id"] for x in data["lineage"]] == [str(parent.public_id)]
    assert sum(len(t[3]) for t in data["texts"]) == stored     # the bundle holds the stored deltas, no more
    imported = import_bundle(data, user)
    assert imported.public_id == fork.public_id and imported.parent_run is None   # the parent is not here
    assert imported.origin["parent"] == str(parent.public_id)
    assert snapshot(imported) == before

    client.force_login(user)
    for url in ("", "steps/2/", "steps/2/tab/diff/", "effects/", "forks/", "setup/"):
        assert client.get(f"/runs/{imported.public_id}/{url}").status_code == 200, url

    replayed = finish(replay_run(imported, user))
    assert replayed.status == Run.Status.FINISHED, replayed.error
    assert replayed.totals["effects_executed"] == 0 and replayed.totals["effects_reused"] > 0
    got = snapshot(replayed)
    assert got["value"] == before["value"]
    assert [s[4:] for s in got["steps"]] == [s[4:] for s in before["steps"]]   # prefixes, programs, values
    assert [(e[2], e[4]) for e in got["effects"]] == [(e[2], e[4]) for e in before["effects"]]

    refork = finish(runner.fork_run(imported, user, 1))   # replays steps 0-1 from the imported cache
    assert refork.status == Run.Status.FINISHED, refork.error
    reused = Effect.objects.filter(run=refork, step_id__lte=1)
    assert reused.exists() and all(e.status == "hit" for e in reused)


def test_strict_replay_reports_the_first_divergence(user, scripted, tmp_path):
    run = finish(runner.start_run(user, io_config(scripted, tmp_path), "io"))
    data = export_bundle(run, user)
    emptied_database()
    imported = import_bundle(data, user)
    # as if the code had changed: the program the replay builds no longer matches the record
    Run.objects.filter(pk=imported.pk).update(config=dict(imported.config, prompt="Write other notes"))
    imported.refresh_from_db()
    replayed = finish(replay_run(imported, user))
    assert replayed.status == Run.Status.FAILED
    assert "diverged at step 0" in (replayed.error or "").lower(), replayed.error
    assert replayed.totals["effects_executed"] == 0


def test_cli_replays_a_bundle_strictly(user, scripted, tmp_path):
    run = finish(runner.start_run(user, io_config(scripted, tmp_path), "io"))
    path = tmp_path / "run.spellide.json.gz"
    call_command("export_run", str(run.public_id), str(path), stderr=StringIO())
    ws = tmp_path / "ws2"
    ws.mkdir()
    p = subprocess.run([sys.executable, "-m", "spellide", "run", "--prompt", "Write notes", "--workspace", str(ws),
                        "--model", f"replay:{path}", "--strict", "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["effects_executed"] == 0 and out["value"] == run.value
    assert not (ws / "count.txt").exists()        # served from the cache: nothing was written


def test_manage_commands_round_trip(user, scripted, tmp_path):
    run = finish(runner.start_run(user, io_config(scripted, tmp_path), "io"))
    before = snapshot(Run.objects.get(pk=run.pk))
    path = tmp_path / "b.json"
    call_command("export_run", str(run.public_id), str(path), "--plain", stderr=StringIO())
    assert json.loads(path.read_text())["format"] == api.BUNDLE_FORMAT
    emptied_database()
    out = StringIO()
    call_command("import_run", str(path), "--user", user.username, stdout=out)
    assert snapshot(Run.objects.get(public_id=out.getvalue().strip())) == before
    with pytest.raises(CommandError, match="no run with id"):
        call_command("export_run", "not-a-uuid", str(path))
    with pytest.raises(CommandError, match="no user named"):
        call_command("import_run", str(path), "--user", "nobody")


def test_importing_twice_gives_a_new_id(user, scripted, tmp_path):
    run = finish(runner.start_run(user, io_config(scripted, tmp_path), "io"))
    data = export_bundle(run, user)
    again = import_bundle(data, user)
    assert again.public_id != run.public_id and snapshot(again)["steps"] == snapshot(run)["steps"]


def test_upload_imports_or_refuses_with_a_message(client, user, other_user, scripted, tmp_path):
    run = finish(runner.start_run(user, io_config(scripted, tmp_path), "io"))
    good = api.dump_bundle(export_bundle(run, user))
    client.force_login(other_user)
    r = client.post("/runs/import/", {"bundle": SimpleUploadedFile("r.spellide.json.gz", good)})
    assert r.status_code == 302
    new = Run.objects.get(owner=other_user)
    assert r["Location"] == f"/runs/{new.public_id}/"

    data = json.loads(gzip.decompress(good))
    broken_ref = json.loads(json.dumps(data))
    broken_ref["steps"][0]["program"] = 10 ** 6
    bad_sha = json.loads(json.dumps(data))
    bad_sha["texts"][0][4] = "0" * 64
    bad_base = json.loads(json.dumps(data))
    bad_base["texts"][0][1] = 5
    cases = {
        "not json": (b"{nope", "invalid JSON at line 1"),
        "wrong format": (json.dumps({"format": "other"}).encode(), "not a spellide run bundle"),
        "newer version": (json.dumps(dict(data, version=99)).encode(), "unsupported bundle version 99"),
        "dangling text": (json.dumps(broken_ref).encode(), "not in the bundle's text table"),
        "damaged text": (json.dumps(bad_sha).encode(), "does not match its sha256"),
        "forward base": (json.dumps(bad_base).encode(), "must be an earlier text"),
        "not gzip": (b"\x1f\x8bjunk", "not a readable gzip file"),
    }
    runs = Run.objects.count()
    for name, (body, message) in cases.items():
        r = client.post("/runs/import/", {"bundle": SimpleUploadedFile("x.json", body)})
        assert r.status_code == 400, name
        assert message in html.unescape(r.content.decode()), name
    assert client.post("/runs/import/", {}).status_code == 400
    assert Run.objects.count() == runs     # nothing half-imported
    client.logout()
    r = client.post("/runs/import/", {"bundle": SimpleUploadedFile("r.json", good)})
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


def test_bundle_download_follows_access(client, user, other_user, scripted, tmp_path):
    run = finish(runner.start_run(user, io_config(scripted, tmp_path), "io"))
    client.force_login(other_user)
    assert client.get(f"/runs/{run.public_id}/export/bundle.spellide.json.gz").status_code == 404
    assert client.post(f"/runs/{run.public_id}/replay/").status_code == 404
    client.force_login(user)
    r = client.get(f"/runs/{run.public_id}/export/bundle.spellide.json.gz")
    assert r.status_code == 200 and r["Content-Type"] == "application/gzip"
    assert api.load_bundle_bytes(r.content)["run"]["id"] == str(run.public_id)
    html = client.get(f"/runs/{run.public_id}/setup/").content.decode()
    assert 'id="replay-strict"' in html and "export/bundle.spellide.json.gz" in html
