"""Storage of runs, steps, program versions, effects (the cache entries), edits and events.

Program versions are stored as a chain of deltas: a version keeps the first ``keep_chars``
characters of its base's text and appends ``tail``. Successive Spell programs share almost all
their text (the model appends; edit markers rewrite a little), so storage grows with the new
text, not with steps x program size. A version is stored whole (a *snapshot*: no base) when the
text accumulated along its chain since the last snapshot reaches the size of the text itself
(so rebuilding a text never reads more than about twice its size) or when the chain reaches
``SNAPSHOT_LINKS`` (2048) links; a rebuild is one recursive query for the whole chain.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from typing import Optional

from django.conf import settings
from django.db import connection, models
from django.urls import reverse


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)


def empty_totals() -> dict:
    return {"effects_executed": 0, "effects_reused": 0, "input_tokens": 0, "output_tokens": 0,
            "cost": 0.0, "cost_saved": 0.0, "tokens_saved": 0, "time_saved_ms": 0.0, "steps": 0}


class Run(models.Model):
    Status = RunStatus

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spell_runs")
    title = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    pause = models.JSONField(null=True, blank=True)   # the paused event's data while paused
    config = models.JSONField(default=dict)           # RunConfig.to_json()
    parent_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="forks")
    fork_step = models.IntegerField(null=True, blank=True)
    value = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    last_seq = models.IntegerField(default=0)
    share_token = models.CharField(max_length=64, null=True, blank=True, unique=True)
    totals = models.JSONField(default=empty_totals)
    # Additions to the shared schema:
    demo = models.CharField(max_length=64, null=True, blank=True)        # bundled demo name, if any
    worker = models.CharField(max_length=200, blank=True, default="")    # host:pid:token of the executing process
    segment = models.IntegerField(default=0)   # 0 = first execution; +1 per resume after a restart
    error_kind = models.CharField(max_length=64, null=True, blank=True)
    # For a run imported from a bundle: its id, parent and fork lineage where it was exported.
    origin = models.JSONField(null=True, blank=True)
    # A review link: signed-in users who open it may read and comment (see ``review``).
    review_token = models.CharField(max_length=64, null=True, blank=True, unique=True)
    # How many agents the run registered (``Agent`` rows; 0 for a single-agent run, whose
    # pages then never query agents): kept by the persister with the rows.
    agent_count = models.IntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.title or 'run'} ({self.public_id})"

    def get_absolute_url(self) -> str:
        try:
            return reverse("run_detail", kwargs={"public_id": self.public_id})
        except Exception:
            return f"/runs/{self.public_id}/"

    @property
    def group_name(self) -> str:
        return f"run-{self.public_id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def ws_path(self) -> str:
        return f"/ws/runs/{self.public_id}/?last_seq={self.last_seq}"


class ProgramVersion(models.Model):
    SNAPSHOT_LINKS = 2048
    KIND_PROGRAM = "program"
    KIND_ARGS = "args"     # printed effect arguments too long to store inline (model-call prefixes)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="program_versions")
    base = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    keep_chars = models.IntegerField(default=0)
    tail = models.TextField(default="")
    length = models.IntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    # Additions: chain bookkeeping for bounded rebuilds.
    links = models.IntegerField(default=0)        # links since the last snapshot (0 = snapshot)
    chain_chars = models.IntegerField(default=0)  # tail characters of the links since the snapshot
    kind = models.CharField(max_length=8, default=KIND_PROGRAM)

    class Meta:
        indexes = [models.Index(fields=["run", "sha256"]), models.Index(fields=["run", "kind", "-id"])]

    def __str__(self) -> str:
        return f"v{self.pk} ({self.length} chars)"

    # --- storing ------------------------------------------------------------------------
    @classmethod
    def store(cls, run: Run, text: str, base: "Optional[ProgramVersion]" = None,
              kind: str = KIND_PROGRAM, index: Optional[dict] = None) -> "ProgramVersion":
        """Store ``text`` as a version of ``run``'s programs, sharing its longest common prefix
        with ``base`` (default: the run's latest version of this kind). Identical text reuses
        the existing version.

        ``index`` (from ``index_of``) is a writer's in-memory map ``(kind, sha256) -> (pk,
        links, chain_chars)`` of the run's versions: with it no lookup query is needed."""
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if base is not None and base.sha256 == digest and base.run_id == run.pk:
            return base
        if index is not None:
            known = index.get((kind, digest))
            if known is not None:
                same = cls(pk=known[0], run_id=run.pk, sha256=digest, length=len(text), kind=kind,
                           links=known[1], chain_chars=known[2])
                same._state.adding = False
                same._text = text
                _cache_put(same.pk, text)
                return same
        else:
            same = cls.objects.filter(run=run, sha256=digest, kind=kind).order_by("id").first()
            if same is not None:
                _cache_put(same.pk, text)
                same._text = text
                return same
        if base is None:
            base = cls.objects.filter(run=run, kind=kind).order_by("-id").first()
        version = cls(run=run, length=len(text), sha256=digest, kind=kind)
        if base is not None:
            base_text = base.text()
            keep = common_prefix_len(base_text, text)
            tail_len = len(text) - keep
            links = base.links + 1
            chain_chars = base.chain_chars + tail_len
            if keep > 0 and links < cls.SNAPSHOT_LINKS and chain_chars < max(len(text), 1):
                version.base_id = base.pk
                version.keep_chars = keep
                version.tail = text[keep:]
                version.links = links
                version.chain_chars = chain_chars
        if version.base_id is None:
            version.tail = text
            version.keep_chars = 0
            version.links = 0
            version.chain_chars = 0
        version.save(force_insert=True)
        version._text = text
        _cache_put(version.pk, text)
        if index is not None:
            index[(kind, digest)] = (version.pk, version.links, version.chain_chars)
        return version

    @classmethod
    def index_of(cls, run: Run) -> dict:
        """``(kind, sha256) -> (pk, links, chain_chars)`` of a run's versions (first wins)."""
        out: dict = {}
        for pk, kind, sha, links, chain in (cls.objects.filter(run=run).order_by("id")
                                            .values_list("pk", "kind", "sha256", "links", "chain_chars")):
            out.setdefault((kind, sha), (pk, links, chain))
        return out

    # --- reading ------------------------------------------------------------------------
    def text(self) -> str:
        cached = getattr(self, "_text", None)
        if cached is not None:
            return cached
        if self.base_id is None and self.tail:
            text = self.tail
        else:
            text = _cache_get(self.pk)
            if text is None:
                text = _rebuild(self.pk)
        self._text = text
        _cache_put(self.pk, text)
        return text

    @property
    def stored_chars(self) -> int:
        return len(self.tail)

    @classmethod
    def texts(cls, ids: list[int]) -> dict[int, str]:
        """Texts of many versions; shares rebuild work along common chains."""
        out: dict[int, str] = {}
        for vid in ids:
            if vid is None or vid in out:
                continue
            t = _cache_get(vid)
            if t is None:
                t = _rebuild(vid)
                _cache_put(vid, t)
            out[vid] = t
        return out


def common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix: a C-speed ``startswith`` for the usual case (the
    new text extends the old), else a binary search whose slices halve each round (O(n))."""
    n = min(len(a), len(b))
    if b.startswith(a[:n]) if n == len(a) else a.startswith(b):
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if b.startswith(a[lo:mid], lo):
            lo = mid
        else:
            hi = mid
    return lo


def _rebuild(version_id: int) -> str:
    table = ProgramVersion._meta.db_table
    sql = (f"WITH RECURSIVE chain(id, base_id, keep_chars, tail, n) AS ("
           f" SELECT id, base_id, keep_chars, tail, 0 FROM {table} WHERE id = %s"
           f" UNION ALL"
           f" SELECT p.id, p.base_id, p.keep_chars, p.tail, chain.n + 1 FROM {table} p"
           f" JOIN chain ON p.id = chain.base_id)"
           f" SELECT id, base_id, keep_chars, tail FROM chain ORDER BY n")
    with connection.cursor() as cur:
        cur.execute(sql, [version_id])
        rows = cur.fetchall()
    if not rows:
        raise ProgramVersion.DoesNotExist(version_id)
    # rows[0] is the version itself, rows[-1] the snapshot. Walk from the newest, keeping
    # only the part of each ancestor's tail that survives every later truncation.
    pieces: list[str] = []
    limit: Optional[int] = None  # how many characters of the current row's text are needed
    for _id, _base, keep, tail in rows:
        full_len_needed = limit
        if full_len_needed is None:
            pieces.append(tail)
        else:
            # this row's text = base_text[:keep] + tail; we need its first `limit` characters
            if full_len_needed > keep:
                pieces.append(tail[:full_len_needed - keep])
        limit = keep if limit is None else min(limit, keep)
        if limit == 0:
            break
    return "".join(reversed(pieces))


# A process-wide cache of rebuilt texts, bounded by total characters.
_CACHE_LIMIT = 64 * 1024 * 1024
_cache: "OrderedDict[int, str]" = OrderedDict()
_cache_size = 0
_cache_lock = threading.Lock()


def _cache_get(vid: int) -> Optional[str]:
    with _cache_lock:
        t = _cache.get(vid)
        if t is not None:
            _cache.move_to_end(vid)
        return t


def _cache_put(vid: int, text: str) -> None:
    global _cache_size
    if len(text) > _CACHE_LIMIT // 4:
        return
    with _cache_lock:
        if vid in _cache:
            _cache.move_to_end(vid)
            return
        _cache[vid] = text
        _cache_size += len(text)
        while _cache_size > _CACHE_LIMIT and _cache:
            _, old = _cache.popitem(last=False)
            _cache_size -= len(old)


def clear_text_cache() -> None:
    global _cache_size
    with _cache_lock:
        _cache.clear()
        _cache_size = 0


MAIN_AGENT = ":main"   # the root agent's handle (spell-agents.md §1.1)


class StepStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CONTINUED = "continued"
    PAUSED = "paused"


class Step(models.Model):
    Status = StepStatus

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    step_id = models.IntegerField()
    parent = models.IntegerField(null=True, blank=True)
    depth = models.IntegerField(default=1)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.RUNNING)
    prefix_version = models.ForeignKey(ProgramVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    program_version = models.ForeignKey(ProgramVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    completion = models.TextField(default="", blank=True)
    value = models.TextField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    error_span = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    transport = models.CharField(max_length=32, blank=True, default="")
    usage = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    provenance = models.JSONField(default=list, blank=True)
    continued_by = models.IntegerField(null=True, blank=True)
    # Additions:
    segment = models.IntegerField(default=0)     # which execution of the run last produced this step
    recovered = models.BooleanField(default=False)
    # How the program came from the one before (the core's edit trace), when the run knew.
    edit_trace = models.JSONField(null=True, blank=True)
    # Which agent made this model call (the handle as printed) and in which of its lifecycles;
    # a single-agent run's steps are all ":main" generation 1 (so are steps stored before 0006).
    agent = models.CharField(max_length=100, default=MAIN_AGENT)
    generation = models.IntegerField(default=1)
    # A wait inside this step resumed with messages: the receipt rewrote its program
    # (spell-agents.md 2.3). ``program_version`` is the rewritten program; this is the one the
    # step's own turn made, and ``receipt_trace`` the core's report of the rewrite.
    receipt_base_version = models.ForeignKey(ProgramVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                             related_name="+")
    receipt_trace = models.JSONField(null=True, blank=True)

    class Meta:
        unique_together = [("run", "step_id")]
        indexes = [models.Index(fields=["run", "step_id"]), models.Index(fields=["run", "agent", "step_id"])]
        ordering = ["step_id"]

    def __str__(self) -> str:
        return f"step {self.step_id} of {self.run_id}"

    def prefix_text(self) -> str:
        return self.prefix_version.text() if self.prefix_version_id else ""

    def program_text(self) -> str:
        return self.program_version.text() if self.program_version_id else ""


class EffectStatus(models.TextChoices):
    LIVE = "live"
    HIT = "hit"
    MISS = "miss"
    BLOCKED = "blocked"


class Effect(models.Model):
    Status = EffectStatus
    INLINE_ARGS = 2000   # longer printed arguments go to a ProgramVersion chain (args_version)

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="effects")
    step_id = models.IntegerField()     # -1 for the root program
    ordinal = models.IntegerField()
    name = models.CharField(max_length=200)
    args = models.TextField(default="", blank=True)   # printed arguments (a preview when args_version is set)
    args_digest = models.CharField(max_length=64, blank=True, default="")
    result = models.TextField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=EffectStatus.choices)
    reason = models.TextField(default="", blank=True)
    started_at = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    # Additions:
    seq = models.IntegerField(default=0)               # the event that reported it
    segment = models.IntegerField(default=0)
    error = models.TextField(null=True, blank=True)
    error_kind = models.CharField(max_length=64, null=True, blank=True)
    saved_ms = models.FloatField(default=0.0)          # for hits: time the cache saved
    args_version = models.ForeignKey(ProgramVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    class Meta:
        indexes = [models.Index(fields=["run", "step_id"])]
        ordering = ["seq", "id"]

    def __str__(self) -> str:
        return f"{self.name} #{self.ordinal} of step {self.step_id} ({self.status})"

    def args_text(self) -> str:
        """The full printed arguments (``args`` is only a preview when they were long)."""
        return self.args_version.text() if self.args_version_id else self.args

    def key(self) -> dict:
        return {"step": self.step_id, "ordinal": self.ordinal, "name": self.name,
                "args_digest": self.args_digest}


class Edit(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="edits")
    step_id = models.IntegerField()
    point = models.CharField(max_length=32)
    before_version = models.ForeignKey(ProgramVersion, on_delete=models.CASCADE, related_name="+")
    after_version = models.ForeignKey(ProgramVersion, on_delete=models.CASCADE, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    # Additions:
    author_name = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=32, blank=True, default="")   # continue | step | replayed edit
    seq = models.IntegerField(default=0)

    class Meta:
        ordering = ["seq", "id"]
        indexes = [models.Index(fields=["run", "step_id"])]


class RunEvent(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.IntegerField()
    type = models.CharField(max_length=32)
    data = models.JSONField(default=dict)   # compacted: long texts are {"$v": ProgramVersion id}
    created_at = models.DateTimeField()
    ts = models.FloatField(default=0.0)     # the core's event timestamp (time.time())

    class Meta:
        unique_together = [("run", "seq")]
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"{self.seq} {self.type}"


class Reviewer(models.Model):
    """A signed-in user who opened a run's review link. The grant holds only while the run's
    review link is the one they opened (revoking or renewing the link ends every grant)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="reviewers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=64)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        unique_together = [("run", "user")]


class ReviewThread(models.Model):
    """A discussion anchored on a step (``step``), a hunk of its structural diff (``hunk``: the
    row index of the step's diff against its previous program) or a node of its program tree
    (``node``: the node's path), or on the run as a whole (``run``). ``excerpt`` is what the
    anchor showed when the thread was opened, computed by the server, so it reads on its own."""

    ANCHORS = ("run", "step", "hunk", "node")

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="review_threads")
    step_id = models.IntegerField(null=True, blank=True)
    anchor = models.CharField(max_length=8, default="step")
    target = models.CharField(max_length=200, blank=True, default="")
    excerpt = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved = models.BooleanField(default=False)
    resolved_by = models.CharField(max_length=150, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["run", "step_id"])]


class ReviewComment(models.Model):
    thread = models.ForeignKey(ReviewThread, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author_name = models.CharField(max_length=150)
    body = models.TextField()      # Markdown, rendered sanitized (``review.render_markdown``)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class Verdict(models.Model):
    """A reviewer's verdict on a run; the newest per reviewer counts."""

    APPROVED, CHANGES, NOTE = "approved", "changes_requested", "note"
    CHOICES = [(APPROVED, "approved"), (CHANGES, "changes requested"), (NOTE, "note")]

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="verdicts")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author_name = models.CharField(max_length=150)
    verdict = models.CharField(max_length=20, choices=CHOICES)
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

class RunTag(models.Model):
    """A label its owner gives a run, to find it again (the run list filters by tag)."""

    MAX_LENGTH = 40

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=MAX_LENGTH)

    class Meta:
        unique_together = [("run", "name")]
        indexes = [models.Index(fields=["name"])]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    """One agent of a multi-agent run (``agent`` events): its handle, who spawned it, its
    status now, and every status it went through with when (the lanes of the run page).

    ``intervals`` is ``[[status, start_ts, end_ts | null, generation], ...]`` in time order;
    the last one is open (``end_ts`` null) and lasts until the run's latest event. A status an
    agent reports again in the same lifecycle does not start a new interval."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="agents")
    handle = models.CharField(max_length=100)
    parent = models.CharField(max_length=100, null=True, blank=True)   # None for :main
    order = models.IntegerField(default=0)         # registration order in the run (lane order, colour)
    status = models.CharField(max_length=16, default="running")   # one of api AGENT_STATUSES
    generation = models.IntegerField(default=1)
    spawn_step = models.IntegerField(null=True, blank=True)   # the step during which it was registered
    started_at = models.FloatField(default=0.0)    # the core's timestamps (time.time())
    intervals = models.JSONField(default=list, blank=True)
    seq = models.IntegerField(default=0)           # the event that last changed it

    COLOURS = 8   # colour classes ag-0 .. ag-7 (ide.css), by registration order

    class Meta:
        unique_together = [("run", "handle")]
        ordering = ["order", "id"]

    @property
    def colour(self) -> int:
        return self.order % self.COLOURS

    @classmethod
    def colours(cls, run: "Run") -> dict[str, int]:
        """Handle -> colour index of a run's agents (one query; empty for a single agent)."""
        return {h: order % cls.COLOURS for h, order in cls.objects.filter(run=run).values_list("handle", "order")}

    def __str__(self) -> str:
        return f"{self.handle} ({self.status}) of {self.run_id}"


class Message(models.Model):
    """A message one agent (or the runtime) enqueued for others (``message`` events): a send,
    a request on an edge, an edge's completion report, a cancel notice, a future's result or a
    coordinator notice. Where it was received is in ``Receipt``."""

    BODY_CHARS = 2000   # the printed body is kept up to this many characters

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="messages")
    msg_id = models.CharField(max_length=64)        # the core's message id, as printed
    seq = models.IntegerField(default=0)            # the event that reported it (time order)
    kind = models.CharField(max_length=16)          # one of api MESSAGE_KINDS
    sender = models.CharField(max_length=100)
    targets = models.JSONField(default=list)
    edge = models.IntegerField(null=True, blank=True)
    body = models.TextField(null=True, blank=True)
    step_id = models.IntegerField(null=True, blank=True)   # the sender's step (None: the runtime)
    sent_at = models.FloatField(default=0.0)

    class Meta:
        indexes = [models.Index(fields=["run", "msg_id"]), models.Index(fields=["run", "seq"])]
        ordering = ["seq", "id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.msg_id} {self.sender} -> {self.targets}"


class Receipt(models.Model):
    """A message bound to a ``msg-N`` name in a receiving agent's program (``receipt`` events):
    which agent, at which of its steps, at which receipt site, and when."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="receipts")
    msg_id = models.CharField(max_length=64)
    agent = models.CharField(max_length=100)
    step_id = models.IntegerField(null=True, blank=True)
    site = models.CharField(max_length=32, blank=True, default="")
    name = models.CharField(max_length=64, blank=True, default="")     # msg-N
    seq = models.IntegerField(default=0)
    received_at = models.FloatField(default=0.0)

    class Meta:
        indexes = [models.Index(fields=["run", "msg_id"]), models.Index(fields=["run", "step_id"])]
        ordering = ["seq", "id"]
