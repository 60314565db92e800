"""Scale mode for real: PostgreSQL, the Redis channel layer, two daphne processes and a
separate run worker (``manage.py runworker spellide-runs``), all as subprocesses.

One fresh PostgreSQL database per module (``spellide_test_<random>``, dropped afterwards) and a
Redis key prefix of its own. A run started through server A is watched and steered through
server B (its status, its page, a websocket on B); a run whose worker is killed with SIGKILL
becomes ``interrupted`` once a new worker starts, resumes on request, and ends as an
uninterrupted headless run of the same configuration does, with no effect executed twice.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/3"
USERNAME, PASSWORD = "scaler", "pw-scaler-123"

BP_SCRIPT = [
    "'(!call-now r (io/spit \"notes.txt\" \"line one\"))",
    "'(!call-now t (io/slurp \"notes.txt\"))",
    "(def n (count (:ok t))) '(!call-now u (io/spit \"count.txt\" (str n)))",
    "(think \"done\") [n (:ok u)]",
]
SLOW_STEPS = 8
SLOW_LATENCY = 0.35


def slow_script() -> list[dict[str, Any]]:
    # every step appends a line to log.txt: an effect executed twice would show twice
    comps: list[dict[str, Any]] = [
        {"text": f"'(!call-now a{i} (io/spit \"log.txt\" \"step {i}\\n\" {{:append true}}))",
         "latency": SLOW_LATENCY} for i in range(SLOW_STEPS)]
    comps.append({"text": "'(!call-now r (io/slurp \"log.txt\"))", "latency": SLOW_LATENCY})
    comps.append({"text": "(str \"lines: \" (count (strings/split-lines (:ok r))))"})
    return comps


# --- services -----------------------------------------------------------------------------------
def _services_or_skip() -> None:
    try:
        import psycopg
        with psycopg.connect(dbname="postgres", connect_timeout=3, **PG):
            pass
    except Exception as e:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432 as postgres: {e}")
    try:
        import redis
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as e:  # pragma: no cover
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379: {e}")


def _admin(sql: str) -> None:
    import psycopg
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path):
        self.name, self.args, self.env = name, args, env
        self.log = logdir / f"{name}.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Proc":
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        return self

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Scale:
    """The deployment under test."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        token = uuid.uuid4().hex[:10]
        self.dbname = f"spellide_test_{token}"
        self.prefix = f"spellide-test-{token}"
        self.demos = workdir / "demos"
        self.var = workdir / "var"
        self.procs: list[Proc] = []
        self.workers: list[Proc] = []
        env = dict(os.environ)
        env.update(SPELLIDE_DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{self.dbname}",
                   SPELLIDE_REDIS_URL=REDIS_URL, SPELLIDE_REDIS_PREFIX=self.prefix,
                   SPELLIDE_VAR=str(self.var), SPELLIDE_DEMOS_DIR=str(self.demos),
                   SPELLIDE_SECRET_KEY="scale-test-" + token, DJANGO_SETTINGS_MODULE="spellide.web.settings",
                   PYTHONUNBUFFERED="1", SPELLIDE_CONTROL_TIMEOUT="5")
        env.pop("SPELLIDE_RUN_WORKERS", None)   # the default with SPELLIDE_REDIS_URL: channels
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.env = env

    # setup
    def write_demos(self) -> None:
        self.demos.mkdir(parents=True, exist_ok=True)
        (self.demos / "scale-bp.json").write_text(json.dumps({
            "title": "scale: breakpoints", "prompt": "Write notes", "workspace": True,
            "config": {"breakpoints": {"before_model": True}}, "completions": BP_SCRIPT}), encoding="utf-8")
        (self.demos / "scale-slow.json").write_text(json.dumps({
            "title": "scale: slow", "prompt": "Log eight steps", "workspace": True,
            "completions": slow_script()}), encoding="utf-8")

    def manage(self, *args: str) -> str:
        out = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def setup(self) -> None:
        _admin(f'CREATE DATABASE "{self.dbname}"')
        self.write_demos()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("shell", "-c", "from django.contrib.auth import get_user_model as g; "
                    f"g().objects.create_user('{USERNAME}', password='{PASSWORD}')")

    def daphne(self, name: str) -> tuple[Proc, str]:
        port = free_port()
        daphne = str(Path(sys.executable).with_name("daphne"))
        p = Proc(name, [daphne, "-b", "127.0.0.1", "-p", str(port), "spellide.web.asgi:application"],
                 self.env, self.workdir).start()
        self.procs.append(p)
        return p, f"http://127.0.0.1:{port}"

    def worker(self, name: str) -> Proc:
        p = Proc(name, [sys.executable, str(ROOT / "manage.py"), "runworker", "spellide-runs"],
                 self.env, self.workdir).start()
        self.procs.append(p)
        self.workers.append(p)
        return p

    def wait_http(self, proc: Proc, url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.check()
            try:
                with urllib.request.urlopen(url + "/accounts/login/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{proc.name} did not start:\n{proc.text()}")

    def wait_worker(self, proc: Proc, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.check()
            if "listening on spellide-runs" in proc.text():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{proc.name} did not start:\n{proc.text()}")

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} =====\n{p.text()[-6000:]}" for p in self.procs)

    def teardown(self) -> None:
        for p in self.procs:
            p.stop()
        try:
            _admin(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        except Exception as e:  # pragma: no cover
            print(f"could not drop {self.dbname}: {e}", file=sys.stderr)
        try:
            import redis
            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(match=f"{self.prefix}*", count=1000))
            if keys:
                r.delete(*keys)
        except Exception as e:  # pragma: no cover
            print(f"could not clean Redis keys {self.prefix}*: {e}", file=sys.stderr)

    # the database, read directly (the test process's Django is configured for SQLite)
    def sql(self, query: str, *params: Any) -> list[tuple]:
        import psycopg
        with psycopg.connect(dbname=self.dbname, **PG) as conn:
            return conn.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    _services_or_skip()
    s = Scale(tmp_path_factory.mktemp("scale"))
    try:
        s.setup()
        a, s.url_a = s.daphne("daphne-a")
        b, s.url_b = s.daphne("daphne-b")
        w = s.worker("worker-1")
        s.wait_http(a, s.url_a)
        s.wait_http(b, s.url_b)
        s.wait_worker(w)
        yield s
    except BaseException:
        print(s.logs(), file=sys.stderr)
        raise
    finally:
        s.teardown()


@pytest.fixture
def logs_on_failure(scale):
    """The servers' and workers' logs, in the captured output (pytest shows it on failure)."""
    yield
    print(scale.logs(), file=sys.stderr)


# --- HTTP and websocket clients ---------------------------------------------------------------
def http_session(scale: Scale):
    import httpx
    client = httpx.Client(timeout=20, follow_redirects=False)
    r = client.get(scale.url_a + "/accounts/login/")
    assert r.status_code == 200
    token = client.cookies.get("csrftoken")
    r = client.post(scale.url_a + "/accounts/login/", data={
        "username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert r.status_code == 302, r.text[:500]
    assert client.cookies.get("sessionid")
    return client


def post(client, url: str, **data: Any):
    return client.post(url, data=data, headers={"X-CSRFToken": client.cookies.get("csrftoken"),
                                                "Accept": "application/json"})


def status(client, base: str, public_id: str) -> dict[str, Any]:
    r = client.get(f"{base}/runs/{public_id}/status.json")
    assert r.status_code == 200, r.text[:300]
    return r.json()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, scale: Scale) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{scale.logs()}")
        time.sleep(0.05)


class RawWebsocket:
    """A minimal RFC 6455 client (text frames, ping/pong, close), enough to watch a run.

    Frames are collected by a reader thread."""

    def __init__(self, url: str, path: str, headers: dict[str, str]):
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"websocket handshake failed: {buf!r}")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        assert head.split(b"\r\n")[0].split()[1] == b"101", head
        self.frames: list[str] = []
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self.sock.settimeout(None)
        threading.Thread(target=self._reader, daemon=True).start()

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _reader(self) -> None:
        parts: list[bytes] = []
        try:
            while True:
                b0, b1 = self._exact(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._exact(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._exact(8))[0]
                mask = self._exact(4) if b1 & 0x80 else None
                payload = self._exact(n)
                if mask:
                    payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
                if opcode == 8:
                    return
                if opcode == 9:
                    self._send(0xA, payload)
                    continue
                if opcode in (0, 1, 2):
                    parts.append(payload)
                    if b0 & 0x80:
                        with self._lock:
                            self.frames.append(b"".join(parts).decode("utf-8", "replace"))
                        parts = []
        except (EOFError, OSError):
            return
        finally:
            self.closed.set()

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))

    def send_json(self, data: dict) -> None:
        self._send(0x1, json.dumps(data).encode())

    def text(self) -> str:
        with self._lock:
            return "".join(self.frames)

    def seqs(self) -> set[int]:
        return {int(s) for s in re.findall(r'data-seq="(\d+)"', self.text())}

    def close(self) -> None:
        try:
            self._send(0x8, struct.pack(">H", 1000))
            self.sock.close()
        except OSError:
            pass


def connect_ws(scale: Scale, client, base: str, public_id: str) -> RawWebsocket:
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return RawWebsocket(base, f"/ws/runs/{public_id}/?last_seq=0", {"Origin": base, "Cookie": cookies})


# --- headless reference -------------------------------------------------------------------------
def headless(config: dict[str, Any], workspace: Path) -> Any:
    from spellide.spell.api import Breakpoints, RunConfig
    from spellide.spell.api import Run, execute_with_deep_stack
    cfg = RunConfig.from_json(config)
    cfg.breakpoints = Breakpoints()
    workspace.mkdir(parents=True, exist_ok=True)
    cfg.workspace = str(workspace)
    return execute_with_deep_stack(Run(cfg).execute)


def run_config(scale: Scale, public_id: str) -> dict[str, Any]:
    rows = scale.sql("SELECT config FROM web_run WHERE public_id = %s", uuid.UUID(public_id))
    return rows[0][0]


def live_effect_keys(scale: Scale, public_id: str) -> list[tuple[int, int]]:
    return [tuple(r) for r in scale.sql(
        "SELECT e.step_id, e.ordinal FROM web_effect e JOIN web_run r ON e.run_id = r.id "
        "WHERE r.public_id = %s AND e.status IN ('live', 'miss')", uuid.UUID(public_id))]


# --- the tests ----------------------------------------------------------------------------------
def test_run_on_a_worker_is_watched_and_steered_through_another_server(scale, logs_on_failure, tmp_path):
    client = http_session(scale)
    r = post(client, scale.url_a + "/runs/start/", demo="scale-bp")
    assert r.status_code == 200, r.text[:500]
    pid = r.json()["public_id"]

    # server B sees the run, executed by the worker, paused at its first breakpoint
    st = wait_for(lambda: (s := status(client, scale.url_b, pid))["status"] == "paused" and s, 20,
                  "the first pause", scale)
    assert st["pause"]["step"] == 0 and st["pause"]["point"] == "before_model"
    worker = scale.sql("SELECT worker FROM web_run WHERE public_id = %s", uuid.UUID(pid))[0][0]
    assert ":rw-" in worker and str(scale.workers[0].proc.pid) in worker.split(":")[1]
    page = client.get(f"{scale.url_b}/runs/{pid}/")
    assert page.status_code == 200
    control_token = re.search(r'data-control-token="([0-9a-f]+)"', page.text).group(1)

    ws = connect_ws(scale, client, scale.url_b, pid)
    try:
        pause_seq = st["last_seq"]
        wait_for(lambda: pause_seq in ws.seqs(), 10, "the catch-up on B's websocket", scale)
        assert ws.seqs() == set(range(1, pause_seq + 1))

        # an edit that does not parse is refused at once by B, with its position
        bad = post(client, f"{scale.url_b}/runs/{pid}/edit/", text="(quine completion (def x 1)) ) (")
        assert bad.status_code == 422, bad.text
        assert bad.json()["line"] == 1 and bad.json()["col"] is not None
        assert status(client, scale.url_b, pid)["status"] == "paused"

        # resume through B's websocket: the control reaches the worker and is answered
        seen = len(ws.text())
        ws.send_json({"action": "resume", "headers": {}, "control_token": control_token})
        wait_for(lambda: 'data-ok="true"' in ws.text()[seen:], 10, "the websocket control's answer", scale)
        wait_for(lambda: (s := status(client, scale.url_b, pid))["status"] == "paused"
                 and s["pause"]["step"] == 1 and s, 20, "the second pause", scale)
        # live events reached B's websocket (broadcast by the worker through Redis)
        wait_for(lambda: max(ws.seqs()) > pause_seq, 10, "live events on B", scale)

        # the remaining pauses: resumed over HTTP, through B and through A (neither holds the run)
        for step, base in ((1, scale.url_b), (2, scale.url_a), (3, scale.url_b)):
            wait_for(lambda: (s := status(client, base, pid))["status"] == "paused"
                     and s["pause"]["step"] == step, 20, f"the pause at step {step}", scale)
            res = post(client, f"{base}/runs/{pid}/resume/")
            assert res.status_code == 200 and res.json()["ok"], res.text
        final = wait_for(lambda: (s := status(client, scale.url_b, pid))["status"] not in
                         ("queued", "running", "paused") and s, 20, "the end of the run", scale)
        assert final["status"] == "finished", final
        wait_for(lambda: final["last_seq"] in ws.seqs(), 10, "the last event on B", scale)
        # every event exactly once and in full on B's socket: catch-up plus live, no gap
        assert ws.seqs() == set(range(1, final["last_seq"] + 1))
        assert "run_finished" in ws.text() or "finished" in ws.text()
    finally:
        ws.close()

    reference = headless(run_config(scale, pid), tmp_path / "ws-headless")
    assert reference.error is None
    assert final["value"] == reference.value_text == '[8 "count.txt"]'
    assert final["totals"]["effects_executed"] == reference.effects_executed


def test_a_killed_worker_leaves_an_interrupted_run_that_resumes_without_repeating_effects(
        scale, logs_on_failure, tmp_path):
    client = http_session(scale)
    reference_box: dict[str, Any] = {}
    r = post(client, scale.url_a + "/runs/start/", demo="scale-slow")
    assert r.status_code == 200, r.text[:500]
    pid = r.json()["public_id"]
    config = run_config(scale, pid)
    ref_thread = threading.Thread(target=lambda: reference_box.setdefault(
        "result", headless(config, tmp_path / "ws-headless")))
    ref_thread.start()

    old = scale.workers[-1]
    wait_for(lambda: status(client, scale.url_b, pid)["totals"].get("steps", 0) >= 3, 30,
             "three steps of the slow run", scale)
    assert status(client, scale.url_b, pid)["status"] == "running"
    os.kill(old.proc.pid, signal.SIGKILL)
    old.proc.wait(10)
    scale.workers.remove(old)
    executed_before = status(client, scale.url_b, pid)["totals"]["effects_executed"]
    assert status(client, scale.url_b, pid)["status"] == "running"   # nobody has noticed yet

    new = scale.worker("worker-2")
    scale.wait_worker(new)
    st = wait_for(lambda: (s := status(client, scale.url_b, pid))["status"] == "interrupted" and s, 15,
                  "the run to be marked interrupted", scale)
    assert st["segment"] == 0

    # resume on request, through B; the new worker executes it
    res = post(client, f"{scale.url_b}/runs/{pid}/resume-interrupted/")
    assert res.status_code == 200 and res.json()["ok"], res.text
    final = wait_for(lambda: (s := status(client, scale.url_a, pid))["status"] not in
                     ("queued", "running", "paused") and s, 30, "the end of the resumed run", scale)
    assert final["status"] == "finished", final
    assert final["segment"] == 1

    ref_thread.join(30)
    reference = reference_box["result"]
    assert reference.error is None
    assert final["value"] == reference.value_text == '"lines: 8"'
    # no effect executed twice: as many executions as the uninterrupted run, each once
    keys = live_effect_keys(scale, pid)
    assert len(keys) == len(set(keys)) == reference.effects_executed
    assert final["totals"]["effects_executed"] == reference.effects_executed
    assert final["totals"]["effects_reused"] >= executed_before > 0
    ws_dir = Path(run_config(scale, pid)["workspace"])
    assert (ws_dir / "log.txt").read_text() == (tmp_path / "ws-headless" / "log.txt").read_text()
    worker = scale.sql("SELECT worker FROM web_run WHERE public_id = %s", uuid.UUID(pid))[0][0]
    assert worker == ""

    # a fork of it at its last step, through A, replays from the cache on the worker and ends
    # the same way
    fork = post(client, f"{scale.url_a}/runs/{pid}/fork/", step=str(SLOW_STEPS + 1))
    assert fork.status_code == 200, fork.text[:500]
    fid = fork.json()["public_id"]
    fst = wait_for(lambda: (s := status(client, scale.url_b, fid))["status"] not in
                   ("queued", "running", "paused") and s, 30, "the end of the fork", scale)
    assert fst["status"] == "finished" and fst["value"] == final["value"], fst
    assert fst["totals"]["effects_reused"] > 0


def test_a_stopped_worker_interrupts_its_runs_and_lost_dispatches_are_sent_again(
        scale, logs_on_failure):
    client = http_session(scale)
    r = post(client, scale.url_a + "/runs/start/", demo="scale-bp")
    pid = r.json()["public_id"]
    wait_for(lambda: status(client, scale.url_b, pid)["status"] == "paused", 20, "the first pause", scale)

    # SIGTERM: the worker leaves cleanly and marks the runs it executes interrupted itself
    old = scale.workers.pop()
    old.proc.send_signal(signal.SIGTERM)
    old.proc.wait(15)
    st = status(client, scale.url_b, pid)
    assert st["status"] == "interrupted", st
    res = post(client, f"{scale.url_b}/runs/{pid}/resume/")
    assert res.status_code == 409 and not res.json()["ok"]   # nothing executes it: refused

    # with no worker running: a resume waits in the channel; a start whose message expired
    # (simulated: its dispatch token is old) is sent again by the next worker's check
    res = post(client, f"{scale.url_b}/runs/{pid}/resume-interrupted/")
    assert res.status_code == 200 and res.json()["ok"], res.text
    assert status(client, scale.url_a, pid)["status"] == "queued"
    r2 = post(client, scale.url_a + "/runs/start/", demo="scale-bp")
    pid2 = r2.json()["public_id"]
    assert status(client, scale.url_a, pid2)["status"] == "queued"
    stale = "dispatch:1:000000000000"
    scale.sql("UPDATE web_run SET worker = %s WHERE public_id = %s RETURNING id", stale, uuid.UUID(pid2))

    new = scale.worker("worker-3")
    scale.wait_worker(new)
    for p in (pid, pid2):
        wait_for(lambda: status(client, scale.url_b, p)["status"] == "paused", 20, f"{p} paused", scale)
    assert status(client, scale.url_b, pid)["segment"] == 1
    wait_for(lambda: "is stale or taken, ignored" in new.text(), 10, "the stale message ignored", scale)
    # stop both through the web servers: the stop reaches the new worker
    for p, base in ((pid, scale.url_b), (pid2, scale.url_a)):
        res = post(client, f"{base}/runs/{p}/stop/")
        assert res.status_code == 200 and res.json()["ok"], res.text
        wait_for(lambda: status(client, base, p)["status"] == "stopped", 20, f"{p} stopped", scale)
