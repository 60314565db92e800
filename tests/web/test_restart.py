"""A real server restart: daphne in a subprocess on a file SQLite database is killed (SIGKILL)
in the middle of a run; after a restart the run shows as interrupted, resumes on request from
its persisted record, and ends with the same result and the same number of executed effects as
an uninterrupted run. Each step appends a line to a workspace file, so an effect executed twice
(or lost) would show in the result itself."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
APPENDS = 8


def restart_demo() -> dict:
    completions = [{"text": f"'(!call-now w{i} (io/spit \"log.txt\" \"line {i}\\n\" {{:append true}}))",
                    "latency": 0.25} for i in range(APPENDS)]
    completions += [{"text": "'(!call-now final (io/slurp \"log.txt\"))", "latency": 0.25},
                    {"text": "(:ok final)", "latency": 0.25}]
    return {"title": "restart", "prompt": "Append eight lines to log.txt, then read it.",
            "workspace": True, "completions": completions}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict, log: Path):
        self.port = free_port()
        self.log = open(log, "ab")
        daphne = Path(sys.executable).parent / "daphne"
        self.proc = subprocess.Popen([str(daphne), "-b", "127.0.0.1", "-p", str(self.port),
                                      "spellide.web.asgi:application"], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/accounts/login/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start: see {log}")
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


def csrf(client: httpx.Client) -> dict:
    return {"X-CSRFToken": client.cookies.get("csrftoken", ""), "Referer": str(client.base_url) + "/"}


def login(client: httpx.Client, username: str, password: str) -> None:
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    r = client.post("/accounts/login/", data={"username": username, "password": password,
                                               "csrfmiddlewaretoken": token}, headers=csrf(client))
    assert r.status_code == 302, r.text[:500]


def start(client: httpx.Client) -> str:
    r = client.post("/runs/start/", data={"demo": "restart"}, headers={**csrf(client), "HX-Request": "true"})
    assert r.status_code == 200, r.text[:500]
    return r.headers["HX-Redirect"].rstrip("/").split("/")[-1]


def status(client: httpx.Client, public_id: str) -> dict:
    r = client.get(f"/runs/{public_id}/status.json")
    assert r.status_code == 200, r.text[:300]
    return r.json()


def wait(client: httpx.Client, public_id: str, pred, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = status(client, public_id)
        if pred(s):
            return s
        assert time.monotonic() < deadline, f"timed out; last status {s}"
        time.sleep(0.05)


def test_killed_server_resumes_run_with_no_effect_twice(tmp_path):
    demos = tmp_path / "demos"
    demos.mkdir()
    (demos / "restart.json").write_text(json.dumps(restart_demo()), encoding="utf-8")
    db = tmp_path / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPELLIDE_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(DJANGO_SETTINGS_MODULE="spellide.web.settings", SPELLIDE_VAR=str(tmp_path / "var"),
               SPELLIDE_SQLITE_PATH=str(db), SPELLIDE_DEMOS_DIR=str(demos), PYTHONUNBUFFERED="1")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(manage + ["ensure_local_user"], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    password = out.strip().rsplit(" ", 1)[1]

    server = Server(env, tmp_path / "daphne-1.log")
    try:
        client = httpx.Client(base_url=server.url, timeout=10)
        login(client, "spell", password)
        reference_id = start(client)
        reference = wait(client, reference_id, lambda s: s["status"] not in ("queued", "running"))
        assert reference["status"] == "finished", reference
        victim_id = start(client)
        before = wait(client, victim_id, lambda s: s["totals"]["steps"] >= 4)
        assert before["status"] == "running"
    finally:
        server.kill()

    with sqlite3.connect(db) as con:
        row = con.execute("select status, id from web_run where public_id = ?",
                          (victim_id.replace("-", ""),)).fetchone()
        assert row[0] == "running"                     # the dead server could not say otherwise
        victim_pk = row[1]
        executed_before = con.execute("select count(*) from web_effect where run_id = ? and status in "
                                      "('live', 'miss')", (victim_pk,)).fetchone()[0]
    assert 0 < executed_before < reference["totals"]["effects_executed"]

    server = Server(env, tmp_path / "daphne-2.log")
    try:
        client = httpx.Client(base_url=server.url, timeout=10, cookies=client.cookies)
        assert status(client, victim_id)["status"] == "interrupted"
        r = client.post(f"/runs/{victim_id}/resume-interrupted/", headers={**csrf(client), "HX-Request": "true"})
        assert r.status_code == 200, r.text[:300]
        resumed = wait(client, victim_id, lambda s: s["status"] not in ("queued", "running", "interrupted"))
    finally:
        server.kill()

    assert resumed["status"] == "finished", resumed
    assert resumed["value"] == reference["value"]
    assert resumed["value"] == '"' + "".join(f"line {i}\\n" for i in range(APPENDS)) + '"'
    assert resumed["segment"] == 1
    assert resumed["totals"]["effects_executed"] == reference["totals"]["effects_executed"]
    assert resumed["totals"]["effects_reused"] >= executed_before
    with sqlite3.connect(db) as con:
        keys = con.execute("select step_id, ordinal, count(*) from web_effect where run_id = ? and status "
                           "in ('live', 'miss') group by step_id, ordinal", (victim_pk,)).fetchall()
        seqs = [r[0] for r in con.execute("select seq from web_runevent where run_id = ? order by seq",
                                          (victim_pk,))]
    assert all(n == 1 for _, _, n in keys), keys          # no effect executed twice
    assert len(keys) == reference["totals"]["effects_executed"]
    assert seqs == list(range(1, len(seqs) + 1))          # event numbering continued
    log = (tmp_path / "var" / "workspaces" / victim_id / "log.txt").read_text()
    assert log == "".join(f"line {i}\n" for i in range(APPENDS))
