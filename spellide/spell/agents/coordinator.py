"""The coordinator of a multi-agent run: a pure state machine behind one lock.

It knows the run's agents (handle, parent, generation, status, FIFO mailbox, last checkpoint)
and its pending **edges** (one collection of answers each: a source, its targets and one slot
per target), and nothing about evaluation: the actors of ``runtime.py`` call it. Every change
of state is one **transition** committed through ``_commit``, which appends a journal entry
``{seq, actor, kind, payload, result}`` (spell-agents.md section 8.1). Edge ids, ``:spawn-N``
handles, message ids and per-handle ``msg-N`` names are allocated inside transitions, so a
replay that commits the same transitions in the same order gets the same names.

Blocking (a sleeping ``!wait``) happens outside the lock: the sleeper clears its wake signal
under the lock, checks, and then waits on the signal through the run's ``Scheduler`` (the
run-to-block scheduler hands its baton on while an actor sleeps). Enqueueing sets the signal.

Decisions where the spec leaves room ([design], tested in ``tests/spell/test_agents_*.py``):

* A handle without a runner (``register_bare``, the harness's ``H.bare``) is ``:awake`` and
  stays so: messages queue and nothing starts; waking it when finished only bumps its
  generation.
* ``reply`` to a request fills the replier's slot whoever claimed it, as long as the slot is
  pending (the reference checks the slot, not the claim).
* Events go out under the lock, so a listener sees agent statuses in the order they changed;
  a listener may call back into the coordinator from the same thread (the lock is re-entrant).
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from ..data import Keyword, Map, Vector, kw, smap
from ..errors import SpellError, TypedError

MAIN = kw("main")
DEFAULT_MAX_EDGES = 10_000

# agent statuses (spell-agents.md section 1.1) and how the event contract names them
AWAKE, ASLEEP, EXTERNAL_WAIT, FINISHED = "awake", "asleep", "external-wait", "finished"
EVENT_STATUS = {AWAKE: "running", ASLEEP: "sleeping", EXTERNAL_WAIT: "waiting", FINISHED: "finished"}

K_FROM, K_BODY, K_EDGE, K_EXPECTS = kw("from"), kw("body"), kw("edge-id"), kw("expects-response")
K_CANCELLED = kw("cancelled")
ABSENT = object()   # a request without a body (``(agents/ask :t)``), unlike an explicit nil

NOT_REGISTERED = "Handle not registered"
BAD_TARGETS = "Wait targets must be nonempty, distinct, and exclude their source"
SLEEP_REFUSED = "Cannot sleep without an outgoing edge newer than every pending incoming edge"
AWAIT_REFUSED = "Cannot await computation while newer incoming obligations require attention"
DETACHED = "Agent {h} finished with unfinished outgoing edges; result collection abandoned."


def show(handle: Any) -> str:
    """A handle as events and messages print it (``:w``)."""
    return f":{handle.full}" if isinstance(handle, Keyword) else str(handle)


def closed_error() -> TypedError:
    return TypedError("Coordinator closed: the run has ended", kind="coordinator-closed")


# --- records ------------------------------------------------------------------------------------
@dataclass
class Slot:
    status: str = "pending"            # pending | filled
    value: Any = None
    generation: Optional[int] = None   # claimed by this lifecycle of the target; None: unclaimed


@dataclass
class Edge:
    id: int
    source: Keyword
    targets: tuple
    created_seq: int
    slots: dict
    status: str = "pending"
    token: Optional[Callable[[str, Any], None]] = None   # resolve(kind, value) for blocking/request

    def summary(self, full: bool = True) -> Map:
        """The edge as ``agents/status`` shows it (no token); ``full=False``: the four keys a
        ``:sleep-refused`` error lists."""
        base = [kw("id"), self.id, kw("source"), self.source, kw("targets"), Vector(self.targets),
                kw("created-seq"), self.created_seq]
        if full:
            slots = Map()
            for t, s in self.slots.items():
                dict.__setitem__(slots, t, smap(kw("status"), kw(s.status), kw("value"), s.value,
                                                kw("generation"), s.generation))
            base += [kw("status"), kw(self.status), kw("slots"), slots]
        return smap(*base)


@dataclass
class Agent:
    handle: Keyword
    parent: Optional[Keyword]
    generation: int = 1
    status: str = AWAKE
    mailbox: deque = field(default_factory=deque)
    last_raw: Optional[str] = None
    runner: bool = True                 # False: a bare handle (nothing runs its lifecycles)
    msg_counter: int = 0
    calls: int = 0                      # model calls made by this agent, all lifecycles
    failed: bool = False
    wake: threading.Event = field(default_factory=threading.Event)
    external: set = field(default_factory=set)   # keys of external waits (!ask-await)


@dataclass
class Launch:
    """A lifecycle the runtime must start (after the transition that decided it)."""

    handle: Keyword
    generation: int
    site: str            # startup | dormant-resume
    program: Optional[str]
    spawner_step: Optional[int] = None


class Scheduler:
    """How actors share the run. The free scheduler lets every actor run at once; its hooks
    are no-ops. ``RunToBlock`` (``runtime.py``) lets one actor run at a time."""

    def enter(self) -> None:
        """The calling thread (an actor) starts running."""

    def leave(self) -> None:
        """The calling actor is done."""

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """The calling actor blocks meanwhile (sleeping in a wait)."""
        yield


# --- the coordinator ------------------------------------------------------------------------
class Coordinator:
    """See the module docstring. ``emit(type, **data)`` sends events (the run's bus);
    ``launch(Launch)`` starts a lifecycle; both may be replaced after construction."""

    def __init__(self, max_edges: int = DEFAULT_MAX_EDGES,
                 emit: Callable[..., Any] = lambda *a, **k: None,
                 launch: Callable[[Launch], None] = lambda launch: None,
                 scheduler: Optional[Scheduler] = None):
        if isinstance(max_edges, bool) or not isinstance(max_edges, int) or max_edges < 1:
            raise ValueError("Coordinator options require positive integer :max-edges")
        self.max_edges = max_edges
        self.emit = emit
        self.launch = launch
        self.scheduler = scheduler or Scheduler()
        self.lock = threading.RLock()
        self.agents: dict[Keyword, Agent] = {}
        self.edges: dict[int, Edge] = {}
        self.journal: list[dict] = []
        self.warnings: list[dict] = []
        self.closed = False
        self.next_edge_id = 1
        self.next_spawn = 1
        self.next_message = 1
        self._launches: list[Launch] = []
        # the turnstile: who committed each transition, in order (compact: actor indexes)
        self.turns = array("i")
        self.turn_actors: list[Any] = []
        self._actor_ids: dict[Any, int] = {}
        self.replay_turns: Optional[list[tuple]] = None
        self.replay_timeout = 10.0
        # a partial order (a resumed run's record ends where its process died): followed while
        # it lasts, then the agents go free; a replay that cannot follow it goes free too
        self.replay_prefix = False
        self._turns_taken = 0    # turns already handed to events (``take_turns``)
        self._actors_taken = 0
        self.divergence: Optional[str] = None
        self._turn_cond = threading.Condition(self.lock)
        # the step each agent is in, for events (set by the runtime; read only for display)
        self.current_step: dict[Keyword, Optional[int]] = {}

    # --- the sequencer ----------------------------------------------------------------------
    def _commit(self, actor: Any, kind: str, payload: dict, result: Any = None) -> dict:
        """Append the journal entry of a transition (the lock is held)."""
        entry = {"seq": len(self.journal) + 1, "actor": actor, "kind": kind, "payload": payload,
                 "result": result}
        self.journal.append(entry)
        return entry

    # --- the turnstile ------------------------------------------------------------------------
    def _turn(self, actor: Any) -> None:
        """``actor`` commits its next transition (the lock is held). Recording: its turn is
        noted. Replaying (``replay_turns``): it waits until the record says it is its turn, so
        every actor's transitions interleave as they did (spell-agents.md section 8.3)."""
        idx = self._actor_ids.get(actor)
        if idx is None:
            idx = self._actor_ids[actor] = len(self.turn_actors)
            self.turn_actors.append(actor)
        while self.replay_turns is not None:
            pos = len(self.turns)
            if pos >= len(self.replay_turns):
                if self.replay_prefix:   # the partial record ends here: free from now on
                    self._go_free()
                    break
                raise self._diverged(f"{_who(actor)} made a transition the record does not have "
                                     f"(turn {pos + 1}; the record has {len(self.replay_turns)})")
            if self.replay_turns[pos] == _key(actor):
                break
            if self.closed:
                raise closed_error()
            if not self._turn_cond.wait(self.replay_timeout) and self.replay_turns is not None \
                    and len(self.turns) == pos:
                if self.replay_prefix:   # the run left the partial record: it goes on free
                    self._go_free()
                    break
                raise self._diverged(f"stuck at turn {pos + 1}: the record expects a transition "
                                     f"of {_who(self.replay_turns[pos])}, and {_who(actor)} is "
                                     f"waiting for its own")
        self.turns.append(idx)
        if self.replay_turns is not None:
            self._turn_cond.notify_all()

    def _diverged(self, what: str) -> TypedError:
        """The first divergence ends the replay: it is kept (the run reports it whichever
        agent met it) and the coordinator closes, so every other actor unwinds."""
        if self.divergence is None:
            self.divergence = what
        self.closed = True
        for rec in self.agents.values():
            rec.wake.set()
        self._turn_cond.notify_all()
        return TypedError(f"Strict replay diverged: {what}", kind="divergence")

    def turn(self, actor: Any) -> None:
        """A transition outside the coordinator that the turnstile orders too (a step id,
        a mailbox check, a globals operation)."""
        with self.lock:
            self._turn(actor)

    def _go_free(self) -> None:
        """A prefix replay ends: nobody waits for a recorded turn any more (the lock is held)."""
        self.replay_turns = None
        self._turn_cond.notify_all()

    def take_turns(self) -> Optional[dict]:
        """The turns committed since the last call, for an event to carry (so a run's
        persisted events keep its order up to where they end, even if its process dies):
        ``{at, order, actors_at, actors}`` (positions in the order and the actor list), None
        when there are none."""
        with self.lock:
            n, m = len(self.turns), len(self.turn_actors)
            if n == self._turns_taken:
                return None
            out = {"at": self._turns_taken, "order": list(self.turns[self._turns_taken:n]),
                   "actors_at": self._actors_taken,
                   "actors": [list(_key(a)) for a in self.turn_actors[self._actors_taken:m]]}
            self._turns_taken, self._actors_taken = n, m
            return out

    def recorded_turns(self) -> dict:
        """The turn order for a run record: the actors once, then each turn's actor index."""
        with self.lock:
            return {"actors": [list(_key(a)) for a in self.turn_actors], "order": list(self.turns)}

    def replay(self, recorded: dict, timeout: float = 10.0, prefix: bool = False) -> None:
        """Replay the turn order of a record (see ``_turn``); ``prefix``: follow it as far as
        it goes, then run free (a resumed run; a strict replay diverges instead)."""
        actors = [tuple(a) for a in recorded.get("actors") or []]
        self.replay_turns = [actors[i] for i in recorded.get("order") or []]
        self.replay_timeout = timeout
        self.replay_prefix = prefix

    @contextmanager
    def _tx(self, actor: Any) -> Iterator[None]:
        """One transition: under the lock; lifecycles it decided to start start after it."""
        with self.lock:
            if self.closed:
                raise closed_error()
            self._turn(actor)
            yield
            launches, self._launches = self._launches, []
        for launch in launches:
            self.launch(launch)

    def _agent(self, handle: Any) -> Agent:
        rec = self.agents.get(handle)
        if rec is None:
            raise SpellError(f"{NOT_REGISTERED}: {show(handle)}")
        return rec

    def _set_status(self, rec: Agent, status: str) -> None:
        if rec.status == status:
            return
        rec.status = status
        self._emit_agent(rec)

    def _emit_agent(self, rec: Agent) -> None:
        status = "failed" if rec.status == FINISHED and rec.failed else EVENT_STATUS[rec.status]
        self.emit("agent", agent=show(rec.handle), parent=show(rec.parent) if rec.parent else None,
                  status=status, generation=rec.generation,
                  step=self.current_step.get(rec.handle))

    # --- registration -------------------------------------------------------------------------
    def _register(self, actor: Any, handle: Keyword, parent: Optional[Keyword], *, runner: bool,
                  status: str = AWAKE, last_raw: Optional[str] = None) -> Agent:
        if handle in self.agents:
            raise SpellError(f"Handle already registered: {show(handle)}")
        rec = Agent(handle, parent, status=status, last_raw=last_raw, runner=runner)
        self.agents[handle] = rec
        self._commit(actor, "register", {"handle": show(handle), "parent": show(parent) if parent else None,
                                         "status": status, "runner": runner})
        self._emit_agent(rec)
        return rec

    def register_root(self, handle: Keyword = MAIN) -> None:
        """The run's root agent, running (its lifecycle is the run itself)."""
        actor = (show(handle), 1, "main")
        with self._tx(actor):
            if handle in self.agents:   # a harness made it bare first: the run runs it now
                self.agents[handle].runner = True
                return
            self._register(actor, handle, None, runner=True)

    def register_bare(self, actor: Any, handle: Keyword) -> None:
        """A handle with no runner (the harness's ``H.bare``)."""
        with self._tx(actor):
            self._register(actor, handle, None, runner=False)

    def register_dormant(self, actor: Any, handle: Keyword, last_raw: str) -> Keyword:
        """``agents/register``: a finished agent whose first message resumes ``last_raw``."""
        with self._tx(actor):
            self._register(actor, handle, None, runner=True, status=FINISHED, last_raw=last_raw)
        return handle

    def spawn(self, actor: Any, source: Keyword, specs: list[tuple[Optional[Keyword], str]],
              collect: bool, spawner_step: Optional[int] = None) -> tuple[list[Keyword], Optional[int]]:
        """Register every child of ``specs`` (handle or None for a fresh ``:spawn-N``, init
        program text) with parent ``source``, and, when ``collect``, one edge over them claimed
        at generation 1; then start them. All or nothing: a rejection registers nothing."""
        with self._tx(actor):
            self._agent(source)
            handles: list[Keyword] = []
            fresh = self.next_spawn
            for h, _ in specs:
                if h is None:
                    while kw(f"spawn-{fresh}") in self.agents or kw(f"spawn-{fresh}") in handles:
                        fresh += 1
                    h = kw(f"spawn-{fresh}")
                    fresh += 1
                if h in self.agents or h in handles:
                    raise SpellError(f"Handle already registered: {show(h)}")
                handles.append(h)
            if collect and len(self.edges) >= self.max_edges:
                raise TypedError("Coordinator edge capacity exceeded", kind="coordinator-capacity")
            self.next_spawn = fresh
            for h in handles:
                self._register(actor, h, source, runner=True)
            edge_id = None
            if collect:
                edge = self._new_edge(source, tuple(handles))
                for s in edge.slots.values():
                    s.generation = 1
                edge_id = edge.id
            self._commit(actor, "spawn-batch", {"source": show(source), "handles": [show(h) for h in handles],
                                                "collect": collect}, edge_id)
            for h, (_, program) in zip(handles, specs):
                self._launches.append(Launch(h, 1, "startup", program, spawner_step))
        return handles, edge_id

    # --- edges --------------------------------------------------------------------------------
    def _new_edge(self, source: Keyword, targets: tuple, token: Any = None) -> Edge:
        eid = self.next_edge_id
        self.next_edge_id += 1
        edge = Edge(eid, source, targets, eid, {t: Slot() for t in targets}, token=token)
        self.edges[eid] = edge
        return edge

    def _check_targets(self, source: Keyword, targets: list) -> tuple:
        for t in targets:
            if t not in self.agents:
                raise SpellError(f"{NOT_REGISTERED}: {show(t)}")
        if not targets or len(set(targets)) != len(targets) or source in targets:
            raise SpellError(BAD_TARGETS)
        return tuple(targets)

    def request(self, actor: Any, source: Keyword, targets: list, body: Any = ABSENT,
                token: Optional[Callable[[str, Any], None]] = None) -> int:
        """One edge from ``source`` to ``targets`` and a request to each, in one step; the
        targets wake (a finished one starts a new lifecycle). Returns the edge id."""
        with self._tx(actor):
            self._agent(source)
            ts = self._check_targets(source, list(targets))
            if len(self.edges) >= self.max_edges:
                raise TypedError("Coordinator edge capacity exceeded", kind="coordinator-capacity")
            edge = self._new_edge(source, ts, token)
            self._commit(actor, "request", {"edge": edge.id, "source": show(source),
                                            "targets": [show(t) for t in ts],
                                            "body": body is not ABSENT}, edge.id)
            for t in ts:
                self._enqueue(t, self._request_message(source, edge.id, body), "request", source, edge.id)
            return edge.id

    def request_token(self, actor: Any, source: Keyword, target: Keyword, body: Any,
                      resolve: Callable[[str, Any], None]) -> int:
        """``blocking/request``: a single-target edge owned by ``source`` whose completion is
        handed to ``resolve(kind, value)`` instead of a report message; ``kind`` is one of
        ``completed`` (value = the target's answer), ``cancelled``, ``closed``."""
        return self.request(actor, source, [target], body, token=resolve)

    @staticmethod
    def _request_message(source: Keyword, edge_id: int, body: Any) -> Map:
        m = smap(K_FROM, source, K_EXPECTS, True, K_EDGE, edge_id)
        return m if body is ABSENT else m.assoc(K_BODY, body)

    def _pending_in(self, handle: Keyword) -> list[Edge]:
        return [e for e in self.edges.values()
                if handle in e.slots and e.slots[handle].status == "pending"]

    def _out(self, handle: Keyword) -> list[Edge]:
        return [e for e in self.edges.values() if e.source == handle]

    def fill(self, actor: Any, edge_id: int, target: Keyword, value: Any) -> bool:
        """Fill ``target``'s slot of an edge (at most once; a stale edge is a no-op). True when
        that completed the edge."""
        with self._tx(actor):
            return self._fill(actor, edge_id, target, value)

    def _fill(self, actor: Any, edge_id: Any, target: Keyword, value: Any, report: bool = True) -> bool:
        edge = self.edges.get(edge_id)
        slot = edge.slots.get(target) if edge is not None else None
        if slot is None or slot.status != "pending":
            self._commit(actor, "fill", {"edge": edge_id, "target": show(target)}, "no-op")
            return False
        slot.status, slot.value = "filled", value
        done = all(s.status == "filled" for s in edge.slots.values())
        self._commit(actor, "fill", {"edge": edge_id, "target": show(target)}, "completed" if done else "filled")
        if done:
            del self.edges[edge_id]
            edge.status = "completed"
            if edge.token is not None:
                edge.token("completed", value)
            elif report:
                self._report(actor, edge)
        return done

    def _report(self, actor: Any, edge: Edge) -> None:
        if len(edge.targets) == 1:
            t = edge.targets[0]
            msg = smap(K_FROM, t, K_EDGE, edge.id, K_BODY, edge.slots[t].value)
        else:
            msg = smap(K_FROM, Vector(edge.targets), K_EDGE, edge.id,
                       K_BODY, Vector(smap(K_FROM, t, K_BODY, edge.slots[t].value) for t in edge.targets))
        self._commit(actor, "report", {"edge": edge.id, "source": show(edge.source)})
        self._enqueue(edge.source, msg, "report", edge.targets[0] if len(edge.targets) == 1 else None,
                      edge.id, targets=edge.targets)

    def cancel(self, actor: Any, source: Keyword, edge_id: Any) -> Map:
        """``agents/cancel``: only the source may; returns the summary marked cancelled."""
        with self._tx(actor):
            edge = self.edges.get(edge_id)
            if edge is None or edge.source != source:
                raise SpellError(f"No outgoing edge owned by caller: {edge_id}")
            self._cancel(actor, edge)
            return edge.summary()

    def _cancel(self, actor: Any, edge: Edge) -> None:
        del self.edges[edge.id]
        edge.status = "cancelled"
        self._commit(actor, "cancel", {"edge": edge.id, "source": show(edge.source)})
        if edge.token is not None:
            edge.token("cancelled", None)
            return
        owner = self.agents.get(edge.source)
        if owner is not None and owner.status in (ASLEEP, EXTERNAL_WAIT):
            self._enqueue(edge.source, smap(K_EDGE, edge.id, K_FROM, Vector(edge.targets), K_CANCELLED, True),
                          "cancel", None, edge.id, targets=edge.targets)

    # --- messages -----------------------------------------------------------------------------
    def _enqueue(self, target: Keyword, message: Map, kind: str, sender: Any, edge_id: Optional[int] = None,
                 targets: tuple = ()) -> None:
        rec = self._agent(target)
        mid = self.next_message
        self.next_message += 1
        rec.mailbox.append((mid, message))
        self._commit("runtime", "enqueue", {"target": show(target), "message": mid, "kind": kind})
        sender_shown = (show(sender) if sender is not None else
                        ("[" + " ".join(show(t) for t in targets) + "]" if targets else None))
        from ..printer import pr_str
        body = message.get(K_BODY, ABSENT)
        self.emit("message", id=mid, kind=kind, sender=sender_shown, targets=[show(target)],
                  edge=edge_id, **({"body": _clip(pr_str(body))} if body is not ABSENT else {}),
                  step=self.current_step.get(sender) if isinstance(sender, Keyword) else None)
        self._wake(rec)

    def _wake(self, rec: Agent) -> None:
        if rec.status == FINISHED:
            rec.generation += 1
            rec.failed = False
            self._set_status(rec, AWAKE)
            self._commit("runtime", "dormant-wake", {"handle": show(rec.handle), "generation": rec.generation})
            if rec.runner:
                self._launches.append(Launch(rec.handle, rec.generation, "dormant-resume", rec.last_raw))
        elif rec.status in (ASLEEP, EXTERNAL_WAIT):
            self._set_status(rec, AWAKE)
        rec.wake.set()

    def send(self, actor: Any, source: Keyword, target: Keyword, body: Any) -> None:
        """``agents/send``: ``{:from source :body v}`` to ``target``; fills nothing."""
        with self._tx(actor):
            self._agent(target)
            self._commit(actor, "send", {"source": show(source), "target": show(target)})
            self._enqueue(target, smap(K_FROM, source, K_BODY, body), "send", source)

    def enqueue(self, actor: Any, target: Keyword, message: Map, kind: str = "send") -> None:
        """Put a message as it is into ``target``'s mailbox (the harness's ``H.send``, the
        ``!ask-await`` watcher's ``{:from :future ...}``)."""
        with self._tx(actor):
            self._commit(actor, "send", {"target": show(target)})
            self._enqueue(target, message, kind, message.get(K_FROM))

    def drain(self, actor: Any, handle: Keyword, site: str) -> list[tuple[str, int, Map]]:
        """Take the whole mailbox batch of ``handle`` (FIFO), claim its request slots for the
        current generation and name each message ``msg-N`` (per-handle counter, never reset).
        Returns ``[(name, message id, message)]``."""
        with self._tx(actor):
            return self._drain(actor, handle, site)

    def _drain(self, actor: Any, handle: Keyword, site: str) -> list[tuple[str, int, Map]]:
        rec = self._agent(handle)
        rec.wake.clear()
        batch = []
        while rec.mailbox:
            mid, msg = rec.mailbox.popleft()
            if msg.get(K_EXPECTS) is True:
                edge = self.edges.get(msg.get(K_EDGE))
                slot = edge.slots.get(handle) if edge is not None else None
                if slot is not None and slot.generation is None:
                    slot.generation = rec.generation
            rec.msg_counter += 1
            batch.append((f"msg-{rec.msg_counter}", mid, msg))
        if batch:
            self._commit(actor, "drain", {"handle": show(handle), "site": site,
                                          "messages": [m for _, m, _ in batch]},
                         [n for n, _, _ in batch])
        return batch

    def has_mail(self, actor: Any, handle: Keyword) -> bool:
        """Whether a receipt site finds mail now (a turn: a replay must decide the same)."""
        rec = self.agents.get(handle)
        if len(self.agents) < 2:   # the root alone: nobody could have sent any (and no turn)
            return bool(rec is not None and rec.mailbox)
        with self.lock:
            self._turn(actor)
            return bool(rec is not None and rec.mailbox)

    def solo_or_turn(self, actor: Any, then: Callable[[], Any]) -> Any:
        """``then()``, a transition outside the coordinator (a step id, a globals operation),
        as a turn (under the lock) once the run has more than one agent; alone, the root's
        order is its own and it runs as it is."""
        if len(self.agents) < 2:
            return then()
        with self.lock:
            self._turn(actor)
            return then()

    # --- waiting ------------------------------------------------------------------------------
    def _refusal(self, rec: Agent, message: str) -> SpellError:
        from ..printer import pr_str
        data = smap(kw("type"), kw("sleep-refused"), kw("handle"), rec.handle,
                    kw("out-edges"), Vector(e.summary(False) for e in self._out(rec.handle)),
                    kw("in-edges"), Vector(e.summary(False) for e in self._pending_in(rec.handle)))
        err = SpellError(f"{message} {pr_str(data)}", kind="sleep-refused")
        err.thrown = None
        err.data = data   # type: ignore[attr-defined]
        return err

    def _sleep_allowed(self, handle: Keyword) -> bool:
        out = self._out(handle)
        if not out:
            return False
        inc = self._pending_in(handle)
        return not inc or max(e.id for e in out) > max(e.id for e in inc)

    def wait(self, actor: Any, handle: Keyword, site: str = "wait-resume") -> Optional[list]:
        """``!wait`` / ``!sleep`` (spell-agents.md section 4.1). Returns the drained batch the
        agent wakes with, or None when there is nothing to wait for (no edges: a no-op).
        Raises ``:sleep-refused`` (nothing changes) or ``:coordinator-closed``."""
        with self._tx(actor):
            rec = self._agent(handle)
            if rec.mailbox:
                self._commit(actor, "wait", {"handle": show(handle)}, "ready")
                return self._drain(actor, handle, site)
            if not self._out(handle) and not self._pending_in(handle):
                self._commit(actor, "wait", {"handle": show(handle)}, "idle")
                return None
            if not self._sleep_allowed(handle):
                self._commit(actor, "wait", {"handle": show(handle)}, "refused")
                raise self._refusal(rec, SLEEP_REFUSED)
            self._commit(actor, "wait", {"handle": show(handle)}, "waiting")
            rec.wake.clear()
            self._set_status(rec, ASLEEP)
        return self._sleep(actor, rec, site)

    def _sleep(self, actor: Any, rec: Agent, site: str) -> list:
        while True:
            with self.scheduler.blocked():
                rec.wake.wait()
            with self._tx(actor):
                if rec.mailbox:
                    self._set_status(rec, AWAKE)
                    return self._drain(actor, rec.handle, site)
                rec.wake.clear()

    def external_wait_begin(self, actor: Any, handle: Keyword, key: Any) -> Optional[list]:
        """``!ask-await``: register an external wait ``key`` and sleep until any message (the
        watcher delivers the result with ``external_wait_complete``). Returns the batch it
        wakes with (at once when mail is already there). Refused like a sleep when an incoming
        request is not dominated by a newer outgoing edge; with no incoming obligation it may
        wait without any outgoing edge."""
        with self._tx(actor):
            rec = self._agent(handle)
            rec.external.add(key)
            self._commit(actor, "ext-wait-begin", {"handle": show(handle), "key": str(key)})
            if rec.mailbox:
                return self._drain(actor, handle, "wait-resume")
            inc = self._pending_in(handle)
            out = self._out(handle)
            if inc and not (out and max(e.id for e in out) > max(e.id for e in inc)):
                rec.external.discard(key)
                raise self._refusal(rec, AWAIT_REFUSED)
            rec.wake.clear()
            self._set_status(rec, EXTERNAL_WAIT)
        return self._sleep(actor, rec, "wait-resume")

    def external_wait_complete(self, actor: Any, handle: Keyword, key: Any, message: Map) -> None:
        """The watcher of external wait ``key`` delivers its result message (dropped when the
        lifecycle that waited has returned: its external waits were dropped then)."""
        with self._tx(actor):
            rec = self._agent(handle)
            known = key in rec.external
            rec.external.discard(key)
            self._commit(actor, "ext-wait-complete", {"handle": show(handle), "key": str(key)},
                         "delivered" if known else "dropped")
            if known:
                self._enqueue(handle, message, "future", message.get(K_FROM))

    # --- replies ------------------------------------------------------------------------------
    def reply(self, actor: Any, handle: Keyword, msg: Any, value: Any) -> None:
        """``agents/reply``: fill my slot of a request's edge, else send to its singleton sender."""
        with self._tx(actor):
            if isinstance(msg, Map) and msg.get(K_EXPECTS) is True:
                if K_EDGE not in msg:
                    raise SpellError("Actionable request has no edge-id")
                self._fill(actor, msg.get(K_EDGE), handle, value)
                return
            sender = msg.get(K_FROM) if isinstance(msg, Map) else None
            if not isinstance(sender, Keyword):
                raise SpellError("reply: requires a singleton sender")
            self._agent(sender)
            self._commit(actor, "send", {"source": show(handle), "target": show(sender)})
            self._enqueue(sender, smap(K_FROM, handle, K_BODY, value), "send", handle)

    def reply_ask(self, actor: Any, handle: Keyword, msg: Any, value: Any) -> int:
        """``!reply-ask`` (before its sleep): fill my slot (a singleton edge so completed sends
        no report) and open the reverse edge me -> sender with ``value`` as its request."""
        with self._tx(actor):
            edge = self.edges.get(msg.get(K_EDGE)) if isinstance(msg, Map) else None
            slot = edge.slots.get(handle) if edge is not None else None
            if slot is None or slot.status != "pending":
                raise SpellError("Incoming request slot is no longer pending")
            sender = msg.get(K_FROM)
            if len(self.edges) >= self.max_edges and len(edge.targets) > 1:
                raise TypedError("Coordinator edge capacity exceeded", kind="coordinator-capacity")
            self._fill(actor, edge.id, handle, value, report=len(edge.targets) > 1)
            reverse = self._new_edge(handle, (sender,))
            self._commit(actor, "reply-ask", {"edge": edge.id, "reverse": reverse.id}, reverse.id)
            self._enqueue(sender, self._request_message(handle, reverse.id, value), "request", handle, reverse.id)
            return reverse.id

    # --- lifecycles ---------------------------------------------------------------------------
    def finish(self, actor: Any, handle: Keyword, generation: int, value: Any, failed: bool = False,
               rewake: bool = True) -> None:
        """A lifecycle returned (``value``; for a failure the child-failure map): fill every
        incoming slot this generation claimed, cancel its outgoing edges (a warning when there
        were any), drop its external waits, and wake it again at once if mail is waiting
        (``rewake``; not the root, whose return ends the run)."""
        with self.lock:
            if self.closed:
                return
            self._turn(actor)
            rec = self._agent(handle)
            if rec.generation != generation:
                return
            for edge in list(self.edges.values()):
                slot = edge.slots.get(handle)
                if slot is not None and slot.status == "pending" and slot.generation == generation:
                    self._fill(actor, edge.id, handle, value)
            out = self._out(handle)
            if out:
                data = smap(kw("handle"), handle, kw("detached-edges"),
                            Vector(smap(kw("id"), e.id, kw("targets"), Vector(e.targets)) for e in out))
                self._warn(DETACHED.format(h=show(handle)), data)
                for e in out:
                    self._cancel(actor, e)
            rec.external.clear()
            rec.failed = failed
            self._commit(actor, "finish", {"handle": show(handle), "generation": generation,
                                           "failed": failed})
            self._set_status(rec, FINISHED)
            if rec.mailbox and rewake:
                self._wake(rec)
            launches, self._launches = self._launches, []
        for launch in launches:
            self.launch(launch)

    def retire(self, actor: Any, handle: Keyword) -> None:
        """Remove an agent whose lifecycle could not even start."""
        with self.lock:
            self.agents.pop(handle, None)
            self._commit(actor, "retire", {"handle": show(handle)})

    def _warn(self, message: str, data: Map) -> None:
        import time
        from ..printer import pr_str
        w = {"message": message, "data": pr_str(data), "timestamp_ms": int(time.time() * 1000)}
        self.warnings.append(w)
        self.emit("warning", message=message, data=w["data"])

    def checkpoint(self, handle: Keyword, raw: str) -> None:
        """The agent's resumable context (``last-raw``) is now ``raw``. Not journaled: it is
        derived from the program text, which replay checks by itself."""
        rec = self.agents.get(handle)
        if rec is not None:
            rec.last_raw = raw

    def count_call(self, handle: Keyword) -> int:
        """One more model call of ``handle``; returns its index among the agent's calls."""
        with self.lock:
            rec = self.agents.get(handle)
            if rec is None:
                return 0
            rec.calls += 1
            return rec.calls - 1

    def close(self) -> None:
        """The root returned: park no one any more (sleepers wake and unwind with
        ``:coordinator-closed``), resolve request tokens as closed, refuse later calls."""
        with self.lock:
            if self.closed:
                return
            self._commit("runtime", "close", {})
            self.closed = True
            self._turn_cond.notify_all()
            for edge in list(self.edges.values()):
                if edge.token is not None:
                    edge.token("closed", None)
            for rec in self.agents.values():
                rec.wake.set()

    # --- queries ------------------------------------------------------------------------------
    def status(self, handle: Keyword, full: bool, actor: Any = None) -> Map:
        with self.lock:
            if actor is not None:
                self._turn(actor)
            rec = self._agent(handle)
            base = [kw("handle"), handle, kw("status"), kw(rec.status), kw("generation"), rec.generation]
            if full:
                base += [kw("out-edges"), self.out_edges(handle), kw("in-edges"), self.in_edges(handle)]
            return smap(*base)

    def out_edges(self, handle: Keyword, actor: Any = None) -> Vector:
        with self.lock:
            if actor is not None:
                self._turn(actor)
            return Vector(e.summary() for e in sorted(self._out(handle), key=lambda e: e.id))

    def in_edges(self, handle: Keyword, actor: Any = None) -> Vector:
        """Live edges with a slot of ``handle``, already-filled slots of pending edges included."""
        with self.lock:
            if actor is not None:
                self._turn(actor)
            return Vector(e.summary() for e in sorted(self.edges.values(), key=lambda e: e.id)
                          if handle in e.slots)

    def graph(self, actor: Any = None) -> Map:
        with self.lock:
            if actor is not None:
                self._turn(actor)
            nodes = Map()
            for h, rec in self.agents.items():
                dict.__setitem__(nodes, h, smap(kw("status"), kw(rec.status), kw("generation"), rec.generation))
            edges = Map()
            for eid in sorted(self.edges):
                dict.__setitem__(edges, eid, self.edges[eid].summary())
            return smap(kw("nodes"), nodes, kw("edges"), edges)

    def mailbox(self, handle: Keyword) -> list[Map]:
        with self.lock:
            return [m for _, m in self._agent(handle).mailbox]

    def summary(self) -> list[dict]:
        """The agents as the CLI's ``--json`` lists them."""
        with self.lock:
            return [{"handle": show(r.handle), "parent": show(r.parent) if r.parent else None,
                     "status": "failed" if r.status == FINISHED and r.failed else r.status,
                     "generation": r.generation, "calls": r.calls} for r in self.agents.values()]


def _key(actor: Any) -> tuple:
    return tuple(actor) if isinstance(actor, (tuple, list)) else (str(actor),)


def _who(actor: Any) -> str:
    k = _key(actor)
    return f"{k[0]} (generation {k[1]}, {k[2]})" if len(k) == 3 else str(k[0])


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text)} chars]"
