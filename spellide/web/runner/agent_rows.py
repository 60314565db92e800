"""The rows a multi-agent run's events derive: agents with their status intervals, messages
and receipts (``models.Agent`` / ``Message`` / ``Receipt``).

The run persister hands every event of a batch to ``AgentRows.apply`` inside the batch's
transaction and calls ``flush`` before it commits, so these rows are committed together with
the events that made them (a page rendered after the commit sees both). A single-agent run
emits no agent, message or receipt event and gets no rows here.

Restarted executions of a run (a resume replays the recorded part) report messages and
receipts they already reported: one already stored is not stored again.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from spellide.spell.api import events as ev

from ..models import MAIN_AGENT, Agent, Message, Receipt, Run, RunEvent
from ..stepinfo import int_or_none


ACTIVE = ("running", "waiting", "sleeping")
ABANDONED = "abandoned"   # not a status the core reports: the run ended while the agent was active


def _handle(x: Any) -> str:
    return str(x)[:100] if x is not None else ""


class AgentRows:
    """Derived agent rows of one run, kept in memory between batches (one writer per run)."""

    def __init__(self, run: Run):
        self.run = run
        self.agents: dict[str, dict[str, Any]] = {
            a.handle: {"pk": a.pk, "parent": a.parent, "order": a.order, "status": a.status,
                       "generation": a.generation, "spawn_step": a.spawn_step,
                       "started_at": a.started_at, "intervals": list(a.intervals or []), "seq": a.seq}
            for a in Agent.objects.filter(run=run)}
        self.known_messages: set[str] = set(Message.objects.filter(run=run).values_list("msg_id", flat=True))
        self.known_receipts: set[tuple[str, str]] = set(
            Receipt.objects.filter(run=run).values_list("msg_id", "agent"))
        self.t0: Optional[float] = None     # when the run started (for an implicit :main)
        self._dirty: set[str] = set()
        self._messages: list[Message] = []
        self._receipts: list[Receipt] = []

    # --- batches (the persister retries a batch whose transaction failed) --------------------
    def begin(self) -> None:
        self._dirty, self._messages, self._receipts = set(), [], []

    def snapshot(self) -> dict[str, Any]:
        return {"agents": copy.deepcopy(self.agents), "known_messages": set(self.known_messages),
                "known_receipts": set(self.known_receipts), "t0": self.t0}

    def restore(self, s: dict[str, Any]) -> None:
        self.agents = s["agents"]
        self.known_messages = s["known_messages"]
        self.known_receipts = s["known_receipts"]
        self.t0 = s["t0"]

    # --- events --------------------------------------------------------------------------------
    def apply(self, typ: str, data: dict[str, Any], ts: float, seq: int) -> None:
        if typ == ev.RUN_STARTED or (typ == ev.STEP_STARTED and self.t0 is None):
            self.t0 = ts if self.t0 is None else min(self.t0, ts)
        if typ == ev.AGENT:
            self._status(_handle(data.get("agent")), data, ts, seq)
        elif typ == ev.STEP_STARTED:
            handle = _handle(data.get("agent") or MAIN_AGENT)
            if handle not in self.agents and handle != MAIN_AGENT:
                # a step of an agent no agent event announced: it is running now
                self._status(handle, {"status": "running", "generation": data.get("generation") or 1,
                                      "step": data.get("parent")}, ts, seq)
        elif typ == ev.MESSAGE:
            self._message(data, ts, seq)
        elif typ == ev.RECEIPT:
            self._receipt(data, ts, seq)
        elif typ in (ev.RUN_FINISHED, ev.RUN_FAILED):
            # the run's coordinator closed: agents still working or waiting are abandoned
            for handle, a in self.agents.items():
                if a["status"] in ACTIVE:
                    # the root's lifecycle is the run's: it ended with it
                    end = ABANDONED if handle != MAIN_AGENT else (
                        "finished" if typ == ev.RUN_FINISHED else "failed")
                    self._status(handle, {"status": end, "generation": a["generation"]}, ts, seq)

    def _start_time(self) -> float:
        if self.t0 is None:
            first = RunEvent.objects.filter(run=self.run).order_by("seq").values_list("ts", flat=True).first()
            self.t0 = first
        return self.t0 or 0.0

    def _status(self, handle: str, data: dict[str, Any], ts: float, seq: int) -> None:
        if not handle:
            return
        if handle != MAIN_AGENT and MAIN_AGENT not in self.agents:
            # the root ran from the start; the core may announce only the agents it spawned
            start = min(self._start_time() or ts, ts)
            self._new(MAIN_AGENT, None, "running", 1, None, start, seq)
        status = str(data.get("status") or "running")[:16]
        generation = int(data.get("generation") or 1)
        a = self.agents.get(handle)
        if a is None:
            parent = data.get("parent")
            if parent is None and handle != MAIN_AGENT and "parent" not in data:
                parent = MAIN_AGENT
            self._new(handle, _handle(parent) if parent is not None else None, status, generation,
                      data.get("step"), ts, seq)
            return
        last = a["intervals"][-1] if a["intervals"] else None
        if last is None or last[0] != status or last[3] != generation:
            if last is not None and last[2] is None:
                last[2] = max(ts, last[1])
            a["intervals"].append([status, ts, None, generation])
        a["status"], a["generation"], a["seq"] = status, generation, seq
        self._dirty.add(handle)

    def _new(self, handle: str, parent: Optional[str], status: str, generation: int,
             step: Any, ts: float, seq: int) -> None:
        self.agents[handle] = {"pk": None, "parent": parent, "order": len(self.agents), "status": status,
                               "generation": generation, "spawn_step": int_or_none(step), "started_at": ts,
                               "intervals": [[status, ts, None, generation]], "seq": seq}
        self._dirty.add(handle)

    def _message(self, data: dict[str, Any], ts: float, seq: int) -> None:
        mid = str(data.get("id") if data.get("id") is not None else f"seq-{seq}")[:64]
        if mid in self.known_messages:
            return
        self.known_messages.add(mid)
        targets = data.get("targets")
        if not isinstance(targets, list):
            targets = [targets] if targets is not None else []
        body = data.get("body")
        if body is not None:
            body = str(body)
            if len(body) > Message.BODY_CHARS:
                body = body[:Message.BODY_CHARS] + "…"
        self._messages.append(Message(
            run=self.run, msg_id=mid, seq=seq, kind=str(data.get("kind") or "send")[:16],
            sender=_handle(data.get("sender")), targets=[_handle(t) for t in targets],
            edge=int_or_none(data.get("edge")), body=body, step_id=int_or_none(data.get("step")), sent_at=ts))

    def _receipt(self, data: dict[str, Any], ts: float, seq: int) -> None:
        agent = _handle(data.get("agent"))
        for m in data.get("messages") or []:
            if not isinstance(m, dict) or m.get("id") is None:
                continue
            mid = str(m["id"])[:64]
            if (mid, agent) in self.known_receipts:
                continue
            self.known_receipts.add((mid, agent))
            self._receipts.append(Receipt(run=self.run, msg_id=mid, agent=agent, step_id=int_or_none(data.get("step")),
                                          site=str(data.get("site") or "")[:32],
                                          name=str(m.get("name") or "")[:64], seq=seq, received_at=ts))

    # --- writing -------------------------------------------------------------------------------
    def flush(self) -> None:
        for handle in sorted(self._dirty, key=lambda h: self.agents[h]["order"]):
            a = self.agents[handle]
            fields = {"parent": a["parent"], "order": a["order"], "status": a["status"],
                      "generation": a["generation"], "spawn_step": a["spawn_step"],
                      "started_at": a["started_at"], "intervals": a["intervals"], "seq": a["seq"]}
            if a["pk"] is None:
                a["pk"] = Agent.objects.create(run=self.run, handle=handle, **fields).pk
            else:
                Agent.objects.filter(pk=a["pk"]).update(**fields)
        if self._messages:
            Message.objects.bulk_create(self._messages)
        if self._receipts:
            Receipt.objects.bulk_create(self._receipts)
        self._dirty, self._messages, self._receipts = set(), [], []
