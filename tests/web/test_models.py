"""Program versions: storage grows with the new text, not with steps x program size, and every
version's text comes back exactly."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from spellide.web.models import ProgramVersion, Run, clear_text_cache, common_prefix_len


@pytest.fixture
def run(user):
    return Run.objects.create(owner=user, title="storage")


def stored_chars(run) -> int:
    return sum(len(t) for t in ProgramVersion.objects.filter(run=run).values_list("tail", flat=True))


def test_common_prefix_len():
    assert common_prefix_len("", "") == 0
    assert common_prefix_len("abc", "abc") == 3
    assert common_prefix_len("abc", "abd") == 2
    assert common_prefix_len("abc", "abcdef") == 3
    assert common_prefix_len("xbc", "abc") == 0
    rng = random.Random(1)
    for _ in range(200):
        a = "".join(rng.choice("ab") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("ab") for _ in range(rng.randint(0, 40)))
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        assert common_prefix_len(a, b) == n


@pytest.mark.django_db
def test_thousand_appended_versions_store_about_the_new_text(run):
    program = "(quine completion (eval (do (quine prompt \"Count to a thousand\") (quote (!extend)) "
    initial = len(program)
    versions = []
    for i in range(1000):
        program += f"(think \"step {i}: still counting, nothing to prune\") (def n{i} {i}) "
        versions.append((ProgramVersion.store(run, program), program))
    new_text = len(program) - initial
    naive = sum(len(t) for _, t in versions)          # storing every version whole
    stored = stored_chars(run)
    print(f"\n1,000 appended versions: final program {len(program)} chars, new text {new_text}, "
          f"stored {stored} ({stored / new_text:.3f}x the new text), whole copies would be {naive} "
          f"({naive / stored:.0f}x more)")
    assert stored <= initial + new_text + 1000   # ~ the new text only
    assert naive > 400 * stored
    clear_text_cache()
    for pv, text in versions[::97] + versions[-3:]:
        fresh = ProgramVersion.objects.get(pk=pv.pk)
        assert fresh.text() == text
        assert fresh.length == len(text)


@pytest.mark.django_db
def test_rewrites_prunes_and_identical_text(run):
    texts = ["(do (def a 1) (def b 2) (+ a b))", "(do (def a 1) (def b 2) (+ a b) (prune))",
             "(do (def a 1) (persist k 3))", "(do (def a 1) (persist k 3))", "completely different",
             "(do (def a 1) (def b 2) (+ a b))"]
    versions = [ProgramVersion.store(run, t) for t in texts]
    assert versions[2].pk == versions[3].pk          # identical text reuses the version
    assert versions[0].pk == versions[5].pk          # also when it is not the latest
    assert versions[4].base_id is None               # nothing in common: a snapshot
    assert versions[1].base_id == versions[0].pk and versions[1].tail == " (prune))"
    clear_text_cache()
    for v, t in zip(versions, texts):
        assert ProgramVersion.objects.get(pk=v.pk).text() == t
    assert ProgramVersion.texts([v.pk for v in versions]) == {v.pk: t for v, t in zip(versions, texts)}


@pytest.mark.django_db
def test_random_edits_round_trip_and_rebuild_is_one_query(run):
    rng = random.Random(7)
    text = "(quine completion (eval (do "
    pairs = []
    for i in range(300):
        op = rng.random()
        if op < 0.7:
            text += f"(def x{i} {rng.randint(0, 999)}) "
        elif op < 0.9 and len(text) > 40:
            cut = rng.randint(30, len(text))
            text = text[:cut] + f"(rethink \"r{i}\") "
        else:
            mid = rng.randint(0, len(text))
            text = text[:mid] + "\u00e9\U0001F600" + text[mid:]
        pairs.append((ProgramVersion.store(run, text), text))
    clear_text_cache()
    for pv, t in pairs:
        fresh = ProgramVersion.objects.get(pk=pv.pk)
        clear_text_cache()
        with CaptureQueriesContext(connection) as ctx:
            assert fresh.text() == t
        assert len(ctx.captured_queries) <= 1
    # the chain bookkeeping bounds what a rebuild reads: at most about twice the text
    for pv, t in pairs:
        assert pv.chain_chars <= max(len(t), 1) + 1 or pv.base_id is None


@pytest.mark.django_db
def test_snapshot_after_many_links(run, monkeypatch):
    monkeypatch.setattr(ProgramVersion, "SNAPSHOT_LINKS", 10)
    text = "(do "
    vs = []
    for i in range(25):
        text += f"{i} "
        vs.append(ProgramVersion.store(run, text))
    assert [v.links for v in vs[:12]] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    clear_text_cache()
    assert ProgramVersion.objects.get(pk=vs[-1].pk).text() == text
