"""The effect cache view says what differs for a miss, structurally (the changed forms of the
prefix against the recorded call, not a text diff of the whole prefix), lets long arguments
expand laid out, and keeps arguments and results in a row of their own."""

from __future__ import annotations

import html as htmllib
import re

import pytest

from .conftest import finish
from .test_controls import _fast, client, htmx, run_from  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_miss_after_a_fork_edit_shows_the_changed_forms(client):  # noqa: F811
    parent = finish(run_from(client.post("/runs/start/", {"demo": "countdown"})), 60)
    prefix = client.get(f"/runs/{parent.public_id}/steps/3/text/prefix/").content.decode()
    fork = finish(run_from(htmx(client, f"/runs/{parent.public_id}/fork/",
                                {"step": "3", "point": "before_model", "with_edit": "1",
                                 "text": prefix + "(def human-note 1) "})), 60)
    page = client.get(f"/runs/{fork.public_id}/effects/?status=miss").content.decode()
    misses = page.count('class="fx-row fxs-miss"')
    assert misses >= 1
    first = page.split('class="fx-io fxs-miss"', 1)[1].split("</tr>", 1)[0]
    assert "What differs from the recorded call: 1 change" in first
    rows = re.findall(r'<div class="drow dk-([a-z-]+)"><span class="dlabel">([^<]*)</span>(.*?)</div>', first, re.S)
    assert len(rows) == 1 and rows[0][1] == "added" and "(def human-note 1)" in htmllib.unescape(rows[0][2])
    assert "@@" not in first                     # no raw unified diff of the prefix
    # the step's effects tab says the same
    tab = client.get(f"/runs/{fork.public_id}/steps/3/tab/effects/").content.decode()
    assert "What differs from the recorded call: 1 change" in tab
