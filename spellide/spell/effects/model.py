"""Model calls as effects: ``model/spell`` (a step's completion, made by ``!llm-self`` and the
turn helpers) and ``model/text`` (``leaf-llm``). They are made by the turn machine, not called
as ``model/...`` by programs, so the namespace is declared for its names and docs only (effect
breakpoints and the IDE's effect views use them)."""

from __future__ import annotations

from ..namespaces import Fn, Namespace, declare

declare(Namespace(
    "model", "Model calls, each one effect keyed by its prompt and the settings that change "
             "the answer.",
    [Fn("spell", (1, 1), "The completion of a step's program prefix (!llm-self, !extend, "
                         "!call-now, ...)."),
     Fn("text", (1, None), "A plain text answer to a question (leaf-llm).")],
    bound=False))
