"""Message receipt: how a drained batch rewrites an agent's program (spell-agents.md 2.3).

For a batch ``m1 ... mk`` the last top-level form of the program text, a canonical
``(quine NAME ... (eval (do BODY...)))``, gets, per message in mailbox order,
``(think "<label>") (def msg-N <message literal>) (quote (!extend NAME))`` appended to BODY.
The model's own trailing action is then no longer last: it never runs ("preempted"), and only
the last ``(!extend NAME)`` continues, so k messages cause one continuation model call.

The message literal is written bare when it evaluates to itself, else quoted; only ``:body`` is
rendered like a ``!call-now`` value (long values clipped or stored), the routing keys stay exact.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import edits
from ..data import List, Map, Symbol
from ..errors import SpellError
from ..printer import pr_str
from ..reader import read_all
from .coordinator import K_BODY

LABELS = {"startup": "startup: tail not run", "pre-eval": "pre-eval: tail not run",
          "wait-resume": "wait resumed", "dormant-resume": "dormant resumed",
          "receive": "receive: not evaluated"}
THINK = Symbol("think")
DEF = Symbol("def")
QUOTE = Symbol("quote")
EXTEND = Symbol("!extend")


def message_literal(message: Map, store: Any, limit: int) -> Any:
    """The source form a message is bound with."""
    if edits._self_evaluating(message):
        return message
    if K_BODY in message and all(edits._self_evaluating(v) for k, v in message.items() if k is not K_BODY):
        return message.assoc(K_BODY, edits.render_value(message[K_BODY], store, limit))
    return edits.quote_value(message)


def canonical_quine(form: Any) -> bool:
    return edits.is_quine(form) and edits._is_eval_do(form[-1])


def receipt_forms(site: str, batch: list[tuple[str, int, Map]], quine_name: Any, store: Any,
                  limit: int) -> list:
    label = LABELS[site]
    out: list = []
    for name, _, message in batch:
        out += [List((THINK, label)), List((DEF, Symbol(name), message_literal(message, store, limit))),
                List((QUOTE, List((EXTEND, quine_name))))]
    return out


def apply_receipt(program: Any, site: str, batch: list[tuple[str, int, Map]], store: Any,
                  limit: int) -> tuple[Any, str, list]:
    """``program`` (text or the read form) with the batch received; returns (form to
    evaluate, its printed text, the forms added). Earlier top-level forms stay in front as
    inert text (only the last one is evaluated)."""
    try:
        forms = read_all(program) if isinstance(program, str) else [program]
    except SpellError as err:
        raise SpellError(f"Inbox macro materialization failed: {err.message}") from None
    last = forms[-1] if forms else None
    if not canonical_quine(last):
        raise SpellError("Inbox macro materialization failed: the last top-level form is not a "
                         f"canonical (quine NAME ... (eval (do ...))): {pr_str(last)[:200]}")
    added = receipt_forms(site, batch, last[1], store, limit)
    new_last = edits.append_to_body(last, added, by="receipt")
    trace = edits.EditTrace(last)
    trace.result = new_last
    trace.added = [("receipt", f) for f in added]
    new_last.edit_trace = trace   # type: ignore[attr-defined]
    text = " ".join([*(pr_str(f) for f in forms[:-1]), pr_str(new_last)])
    return new_last, text, added


def check_receivable(program: Any) -> Optional[str]:
    """Why ``(receive x)`` refuses ``x`` (None: it is a canonical completed quine)."""
    if canonical_quine(program):
        return None
    return f"receive expects a canonical completed quine: {pr_str(program)[:200]}"
