"""Build recorded runs directly in the database (no runtime), for page tests and benches.

The programs look like a real extension chain: step k's program is step k-1's program with one
more ``def`` appended by the model, the way ``!extend`` grows a Spell program.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from spellide.web.models import Edit, Effect, ProgramVersion, Run, Step, empty_totals

HEAD = '(quine completion (eval (do (quine prompt "count") '


def completion_for(i: int, payload: str = "") -> str:
    text = f'(def n{i} {i}) (quote (!extend))'
    if payload:
        text = f'(def p{i} "{payload}") ' + text
    return text


def make_run(owner: Any, steps: int = 5, *, title: str = "recorded", payload: str = "",
             status: str = "finished", parent: Optional[Run] = None, fork_step: Optional[int] = None,
             bulk: bool = False, value: str = "42", error_step: Optional[int] = None) -> Run:
    """A finished run of ``steps`` continued steps; ``payload`` is put in every completion,
    value and effect (to test escaping)."""
    totals = dict(empty_totals(), steps=steps, effects_executed=steps, input_tokens=10 * steps,
                  output_tokens=5 * steps)
    run = Run.objects.create(owner=owner, title=title, status=status, value=value,
                             config={"prompt": "count", "model": "hello", "breakpoints": {}},
                             totals=totals, parent_run=parent, fork_step=fork_step, last_seq=steps * 4)
    t0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)
    body = ""
    step_rows, effect_rows = [], []
    last_pv = None
    for i in range(steps):
        prefix = HEAD + body
        comp = completion_for(i, payload)
        program = prefix + comp + ")))"
        pre_v = ProgramVersion.store(run, prefix, base=last_pv)
        prog_v = ProgramVersion.store(run, program, base=pre_v)
        last_pv = prog_v
        last = i == steps - 1
        err = None
        if error_step == i:
            err = f"Unbound symbol: {payload or 'oops'}"
        step_rows.append(Step(
            run=run, step_id=i, parent=i - 1 if i else None, depth=i + 1,
            status="failed" if err else ("completed" if last else "continued"),
            prefix_version=pre_v, program_version=prog_v, completion=comp,
            value=(value if last else None), error=err,
            error_span={"line": 1, "col": len(prefix) + 2} if err else None,
            model="hello", transport="prefill", usage={"input_tokens": 10, "output_tokens": 5},
            started_at=t0 + dt.timedelta(seconds=i), finished_at=t0 + dt.timedelta(seconds=i, milliseconds=250),
            provenance=[{"start": 0, "end": len(prefix), "source": "prefix"},
                        {"start": len(prefix), "end": len(prefix) + len(comp), "source": "model"},
                        {"start": len(prefix) + len(comp), "end": len(program), "source": "assembly"}],
            continued_by=None if last else i + 1))
        effect_rows.append(Effect(
            run=run, step_id=i, ordinal=0, name="model/spell", args=f'["{payload}" {{:model "hello"}}]',
            args_digest=f"{i:016x}", result=comp, status="hit" if (fork_step is not None and i <= fork_step) else "live",
            reason="", started_at=1.0 * i, duration_ms=12.5, usage={"input_tokens": 10, "output_tokens": 5},
            seq=i * 4 + 2))
        if payload:
            effect_rows.append(Effect(
                run=run, step_id=i, ordinal=1, name="io/slurp", args=f'["{payload}"]', args_digest="ab" * 8,
                result=payload, status="miss", reason="arguments changed", duration_ms=1.0, seq=i * 4 + 3))
        body += comp + " "
        if bulk and len(step_rows) >= 500:
            Step.objects.bulk_create(step_rows)
            Effect.objects.bulk_create(effect_rows)
            step_rows, effect_rows = [], []
    Step.objects.bulk_create(step_rows)
    Effect.objects.bulk_create(effect_rows)
    return run


def add_human_edit(run: Run, step_id: int, user: Any, new_text_piece: str) -> None:
    """Mark step ``step_id`` as hand-edited before its model call: the prefix gains
    ``new_text_piece`` (recorded as human provenance) and an Edit row names the author."""
    step = Step.objects.get(run=run, step_id=step_id)
    prefix = step.prefix_text()
    program = step.program_text()
    new_prefix = prefix + new_text_piece + " "
    new_program = new_prefix + program[len(prefix):]
    pre_v = ProgramVersion.store(run, new_prefix)
    prog_v = ProgramVersion.store(run, new_program)
    start = len(prefix)
    end = start + len(new_text_piece)
    step.prefix_version = pre_v
    step.program_version = prog_v
    step.provenance = [{"start": 0, "end": start, "source": "prefix"},
                       {"start": start, "end": end, "source": "human", "author": user.username, "at": 1790000000.0},
                       {"start": end, "end": len(new_prefix), "source": "prefix"},
                       {"start": len(new_prefix), "end": len(new_program) - 3, "source": "model"},
                       {"start": len(new_program) - 3, "end": len(new_program), "source": "assembly"}]
    step.save()
    Edit.objects.create(run=run, step_id=step_id, point="before_model", before_version=pre_v,
                        after_version=pre_v, author=user, author_name=user.username, action="continue")
