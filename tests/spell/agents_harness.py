"""The harness of spell-agents.md section 10 over a real run: per-handle scripts, the test
namespace ``t/`` (``(t/mark x)``), the harness ops on the run's coordinator (``bare``,
``send``, ``request``, ``fill``, ``drain``, ``finish``) and the hooks ``at`` (during agent
h's i-th model call), ``when_asleep`` (the k-th time h goes to sleep) and ``at_end`` (the root
returned, before close)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from spellide.spell.api import RunConfig
from spellide.spell.data import kw
from spellide.spell.machine import Run, execute_with_deep_stack
from spellide.spell.models.base import ModelRequest
from spellide.spell.models.local import ScriptedModel
from spellide.spell.printer import pr_str
from spellide.spell.reader import read_one

HARNESS = ("harness", 0, "test")
SAVED = '(quine completion (eval (do (quine prompt \\"Worker.\\") \'nil)))'
LW, LP, LS, LD, LR = "wait resumed", "pre-eval: tail not run", "startup: tail not run", "dormant resumed", \
    "receive: not evaluated"


def PREFIX(*forms: str) -> str:
    return "(quine completion (eval (do " + "".join(f + " " for f in forms)


def RCPT(label: str, n: int, message: str) -> str:
    return f'(think "{label}") (def msg-{n} {message}) (quote (!extend completion))'


def init(action: str, *before: str) -> str:
    """``(quine completion (eval (do BEFORE... 'ACTION)))``."""
    return "(quine completion (eval (do " + "".join(b + " " for b in before) + "'" + action + ")))"


def registers(handles: list[str], rest: str) -> str:
    """An Init whose action registers each of ``handles`` with SAVED, then does ``rest``."""
    regs = " ".join(f"(agents/register :{h} saved)" for h in handles)
    return init(f"(do {regs} {rest})", f'(def saved "{SAVED}")')


def m(text: str) -> Any:
    """A Spell value (a message) from text."""
    return read_one(text)


class HookedScript(ScriptedModel):
    """Per-handle scripts, with hooks run during an agent's i-th call (before it answers)."""

    def __init__(self, scripts: dict[str, list], hooks: dict[tuple[str, int], Callable[[], None]]):
        super().__init__(scripts, name="scripted")
        self.hooks = hooks

    def complete(self, request: ModelRequest):
        hook = self.hooks.get((request.extra.get("agent"), request.extra.get("agent_call_index", 0) + 1))
        if hook is not None:
            hook()
        return super().complete(request)


class Harness:
    def __init__(self, scripts: Optional[dict[str, list]] = None, *, init: Optional[str] = None,
                 prompt: Optional[str] = None, recover: bool = False, max_edges: Optional[int] = None,
                 scheduler: str = "free", **cfg: Any):
        self.marks: list[Any] = []
        self.hooks: dict[tuple[str, int], Callable[[], None]] = {}
        self.asleep_hooks: dict[tuple[str, int], Callable[[], None]] = {}
        self._asleep_count: dict[str, int] = {}
        self.events: list[Any] = []
        self.model = HookedScript(scripts or {}, self.hooks)
        config = RunConfig(prompt=prompt, init=init, recover=recover, **cfg)
        self.run = Run(config, model=self.model, listeners=[self._on_event],
                       effect_namespaces={"t": {"mark": self._mark}}, max_edges=max_edges,
                       scheduler=scheduler)
        self.coord = self.run.coordinator
        self.end_state: dict[str, Any] = {}
        self._lock = threading.Lock()

    # --- the test namespace -------------------------------------------------------------------
    def _mark(self, x: Any) -> None:
        with self._lock:
            self.marks.append(x)
        return None

    def _on_event(self, event: Any) -> None:
        self.events.append(event)
        if event.type == "agent" and event.data["status"] == "sleeping":
            h = event.data["agent"].lstrip(":")
            k = self._asleep_count.get(h, 0) + 1
            self._asleep_count[h] = k
            hook = self.asleep_hooks.get((h, k))
            if hook is not None:
                hook()

    # --- harness ops -----------------------------------------------------------------------------
    def bare(self, *handles: str) -> None:
        for h in handles:
            self.coord.register_bare(HARNESS, kw(h))

    def send(self, h: str, message: str) -> None:
        self.coord.enqueue(HARNESS, kw(h), m(message))

    def request(self, src: str, targets: list[str], body: Any) -> int:
        return self.coord.request(HARNESS, kw(src), [kw(t) for t in targets], body)

    def fill(self, edge: int, t: str, value: Any) -> bool:
        return self.coord.fill(HARNESS, edge, kw(t), value)

    def drain(self, h: str) -> list:
        return self.coord.drain(HARNESS, kw(h), "harness")

    def finish(self, h: str, value: Any) -> None:
        rec = self.coord.agents[kw(h)]
        self.coord.finish(HARNESS, kw(h), rec.generation, value)

    # --- hooks -----------------------------------------------------------------------------------
    def at(self, h: str, i: int, fn: Callable[[], None]) -> None:
        self.hooks[(h, i)] = fn

    def when_asleep(self, h: str, k: int, fn: Callable[[], None]) -> None:
        self.asleep_hooks[(h, k)] = fn

    def at_end(self, fn: Callable[[Run], None]) -> None:
        self.run.agents.at_end = fn

    # --- running and looking -----------------------------------------------------------------------
    def execute(self):
        self.result = execute_with_deep_stack(self.run.execute)
        return self.result

    def steps(self, h: str) -> list[dict]:
        return [s for s in self.result.steps if s.get("agent") == f":{h}"]

    def prefixes(self, h: str) -> list[str]:
        return [s["prefix"] for s in self.steps(h)]

    def agent(self, h: str):
        return self.coord.agents[kw(h)]

    def mailbox(self, h: str) -> list[str]:
        return [pr_str(x) for x in self.coord.mailbox(kw(h))]

    def value(self) -> Any:
        assert self.result.error is None, self.result.error
        return self.result.value
