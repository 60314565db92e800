"""Which parts of the multi-agent core this build has, for the IDE's tests of demos that need
them: the agents runtime (``agents/``) and futures (``future``, ``blocking/``, ``!ask-await``)
are built on separate branches and merged separately."""

from __future__ import annotations

import functools

import pytest

from spellide.spell import api


@functools.lru_cache(maxsize=None)
def has_futures() -> bool:
    """Whether ``future`` runs here (before futures it expands to an unbound ``future*``)."""
    run = api.Run(api.RunConfig(init="(future* (fn [] 1))", budget=None), model=api.ScriptedModel([]))
    return api.execute_with_deep_stack(run.execute).error is None


NEEDS_FUTURES = "the plet demo needs the core's futures (future, blocking/plet, !ask-await: branch wt/futures)"


def demo_params(names) -> list:
    """The agent demos as test parameters; the one that needs futures is skipped, saying so,
    in a build without them."""
    return [pytest.param(n, marks=pytest.mark.skipif(n == "agents-plet" and not has_futures(), reason=NEEDS_FUTURES))
            for n in sorted(names)]
