"""The app under test in a real server: daphne in a subprocess, on a free 127.0.0.1 port,
against a file SQLite database of its own (forked live servers hang once an async test ran
in the same pytest process, and an in-memory database is not shared with the server).

Used by the browser tests and by the benches in ``bench/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
USERNAME = "tester"
PASSWORD = "pw-tester-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, workdir: Path, port: Optional[int] = None,
                 settings_module: str = "spellide.web.settings", extra_env: Optional[dict] = None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.settings_module = settings_module
        self.extra_env = dict(extra_env or {})
        self.proc: Optional[subprocess.Popen] = None
        self.log = self.workdir / "daphne.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SPELLIDE_VAR=str(self.workdir / "var"),
                   SPELLIDE_SQLITE_PATH=str(self.workdir / "app.sqlite3"),
                   DJANGO_SETTINGS_MODULE=self.settings_module, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.pop("SPELLIDE_DATABASE_URL", None)
        env.pop("SPELLIDE_REDIS_URL", None)
        env.update(self.extra_env)
        return env

    def manage(self, *args: str) -> str:
        out = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def setup(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("shell", "-c",
                    "from django.contrib.auth import get_user_model as g; U = g(); "
                    f"U.objects.filter(username='{USERNAME}').exists() or "
                    f"U.objects.create_user('{USERNAME}', password='{PASSWORD}')")

    def start(self) -> "AppServer":
        self.setup()
        daphne = Path(sys.executable).with_name("daphne")
        self.proc = subprocess.Popen([str(daphne), "-b", "127.0.0.1", "-p", str(self.port),
                                      "spellide.web.asgi:application"], cwd=ROOT, env=self.env,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("daphne exited:\n" + self.log.read_text(errors="replace"))
            try:
                with urllib.request.urlopen(self.url + "/accounts/login/", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not start:\n" + self.log.read_text(errors="replace"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def login(page, server: AppServer, username: str = USERNAME, password: str = PASSWORD) -> None:
    page.goto(server.url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
