"""A reference trace directory imported as a run (manage.py import_trace, or an uploaded zip /
tar): its steps, programs, values and warnings browse like a recorded run; hostile archives are
refused with a message."""

from __future__ import annotations

import io
import tarfile
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from spellide.web.models import Run, Step

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURE = Path(__file__).resolve().parents[1] / "spell" / "fixtures" / "reference_trace"


def zipped(root: str = "trace") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in FIXTURE.iterdir():
            z.write(p, f"{root}/{p.name}")
    return buf.getvalue()


def test_manage_import_trace_browses_as_a_run(client, user):
    out = StringIO()
    call_command("import_trace", str(FIXTURE), "--user", user.username, stdout=out)
    run = Run.objects.get(public_id=out.getvalue().strip())
    steps = list(Step.objects.filter(run=run).order_by("step_id"))
    assert [s.step_id for s in steps] == [0, 1, 2, 3, 4]
    assert [s.parent for s in steps] == [None, 0, 1, 1, 1]
    assert steps[0].completion.startswith("(think \"Read the file first.\")")
    assert steps[0].program_text().strip() == (FIXTURE / "0000.spl").read_text().strip()   # from the program file
    assert steps[4].program_text() == steps[4].prefix_text() + steps[4].completion        # no file: prompt + response
    assert steps[4].status == "failed" and "Unbound symbol: summarize" in steps[4].error
    assert steps[2].value == '"Three words."'
    assert run.status == Run.Status.FINISHED and "Three words." in run.value
    assert run.origin["trace"] == "reference trace" and "outstanding edge" in run.origin["warnings"][0]["message"]
    client.force_login(user)
    for url in ("", "steps/1/", "steps/1/tab/diff/", "steps/1/tab/tree/", "steps/4/tab/value/", "effects/", "charts/"):
        assert client.get(f"/runs/{run.public_id}/{url}").status_code == 200, url
    with pytest.raises(CommandError, match="no trace.edn"):
        call_command("import_trace", str(FIXTURE.parent), "--user", user.username)


def test_upload_zip_and_tar(client, user):
    client.force_login(user)
    r = client.post("/runs/import-trace/", {"trace": SimpleUploadedFile("t.zip", zipped())})
    assert r.status_code == 302
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(FIXTURE, arcname="ref")
    r = client.post("/runs/import-trace/", {"trace": SimpleUploadedFile("t.tgz", buf.getvalue())})
    assert r.status_code == 302
    assert Run.objects.filter(owner=user).count() == 2


def test_hostile_archives_are_refused(client, user):
    client.force_login(user)
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../escape.txt", "x")
    cases = {"escape": (evil.getvalue(), "outside the trace folder"),
             "not an archive": (b"hello", "not a zip or tar archive"),
             "no trace": (zipped().replace(b"trace.edn", b"trace.txt"), "no trace.edn")}
    for name, (body, message) in cases.items():
        r = client.post("/runs/import-trace/", {"trace": SimpleUploadedFile("x.zip", body)})
        assert r.status_code == 400 and message in r.content.decode(), name
    assert not Run.objects.exists()
    assert not (Path.cwd() / "escape.txt").exists()
