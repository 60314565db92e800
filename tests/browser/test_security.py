"""Issue 11's web-security items in real Chromium against daphne: the pages run under the CSP
with no violation and htmx still works; the run socket accepts the IDE's own page (and its
controls, with the page's token) but not a page on another port of the same host; raw
handshakes with a foreign-port Origin get 403; a share link's Forks view names only what was
shared."""

from __future__ import annotations

import base64
import http.server
import os
import re
import socket
import threading
from contextlib import contextmanager

import pytest

from .server import free_port
from .test_ide import detail_shown, start_demo, start_run, wait_state

pytestmark = pytest.mark.browser

WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));
"""


def watch(page) -> list[str]:
    """Collect CSP violations (in every later document), console errors, and documents
    served without a strict CSP, of ``page``."""
    problems: list[str] = []
    page.context.add_init_script(WATCH_CSP)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))

    def strict(r):
        csp = r.headers.get("content-security-policy") or ""
        if r.request.resource_type == "document" and ("script-src 'self'" not in csp or "unsafe" in csp):
            problems.append(f"no strict CSP on {r.url}: {csp!r}")
    page.on("response", strict)
    return problems


def violations(page) -> list[str]:
    return page.evaluate("window.__csp || ['the CSP watcher did not run']")


def test_main_pages_work_under_the_csp(page, server):
    problems = watch(page)
    run_url = start_demo(page, server, "countdown")
    wait_state(page, "finished")
    detail_shown(page, 10)
    seen = [("run page", violations(page))]
    # htmx under the CSP: a tab loads through hx-get, a step through ide.js + htmx.ajax
    page.keyboard.press("2")
    detail_shown(page, 10, ".tab-pane[data-tab='source']")
    assert page.locator(".src-code .sl").count() > 0
    number = page.evaluate("getComputedStyle(document.querySelector('.src-code .sl'), '::before').content")
    assert number == '"1"'                                # line numbers from data-n, not a counter
    page.click("#step-row-3")
    detail_shown(page, 3)
    seen.append(("run page, after htmx swaps", violations(page)))
    page.goto(run_url + "effects/")
    page.wait_for_selector("#effects-view")
    page.select_option("#effects-view select[name=status]", "hit")       # hx-get on change
    page.wait_for_selector("#effects-view >> text=No effects match")
    seen.append(("effect cache", violations(page)))
    page.goto(run_url + "forks/")
    page.wait_for_selector("#forks-view li.current")
    seen.append(("forks", violations(page)))
    page.goto(run_url + "setup/")
    page.wait_for_selector("#setup-view")
    seen.append(("setup", violations(page)))
    page.goto(run_url + "charts/")
    page.wait_for_selector("#chart-context svg")
    seen.append(("charts", violations(page)))
    run_id = run_url.split("/runs/")[1][:36]
    page.goto(f"{server.url}/runs/{run_id}/compare/{run_id}/")
    page.wait_for_selector("#compare #aligned")
    seen.append(("compare", violations(page)))
    page.goto(server.url + "/")
    page.wait_for_selector(".runs-table")
    seen.append(("run list", violations(page)))
    page.goto(server.url + "/accounts/password_change/")
    page.wait_for_selector(".auth-box #id_old_password")
    seen.append(("password change", violations(page)))
    # the bar behind each row is drawn from its class (the CSP drops style attributes)
    page.goto(run_url)
    widths = page.eval_on_selector_all(
        "#step-rows .r-ms", "els => els.map(e => getComputedStyle(e).getPropertyValue('--w').trim())")
    assert widths and all(w for w in widths), widths
    page.context.clear_cookies()
    page.goto(server.url + "/accounts/login/")
    page.wait_for_selector(".auth-box #id_username")
    seen.append(("login", violations(page)))
    assert [(name, v) for name, v in seen if v] == []
    assert problems == [] and not page.errors


def test_the_ides_controls_work_over_http_and_the_socket(page, server):
    problems = watch(page)
    start_run(page, server, prompt="Count down from 3.", model="demo:countdown", before_model=True)
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='0']")
    page.click("#pause-box form[action$='/resume/'] button")                     # HTTP + CSRF
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='1']")
    # a control over the run's socket (htmx's hx-ws:send, as a page form would send it): ide.js
    # adds the page's control token and the server steers the run
    page.evaluate("""() => {
      const f = document.createElement('form');
      f.id = 'ws-control'; f.setAttribute('hx-ws:send', '');
      f.innerHTML = '<input name="action" value="step">';
      document.querySelector('#live').appendChild(f);
      htmx.process(f);
      f.requestSubmit();
    }""")
    page.wait_for_selector("#pause-box[data-step='1'][data-point='after_completion']")   # stepped: one model call, one stop
    assert "stepping" in page.inner_text("#pause-box .pause-head")
    # the same frame without the token (a raw socket of this page) is refused
    answer = page.evaluate("""(url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => ws.send(JSON.stringify({action: 'stop'}));
      ws.onmessage = (m) => { if (m.data.includes('run-control-result')) { resolve(m.data); ws.close(); } };
      ws.onclose = () => resolve('closed');
    })""", ws_url(page, server))
    assert 'data-ok="false"' in answer and "page token" in answer
    assert wait_state(page, "paused") == "paused"
    page.click("#pause-box form[action$='/stop/'] button")
    wait_state(page, "stopped")
    assert violations(page) == [] and problems == [] and not page.errors


def ws_url(page, server) -> str:
    run_id = re.search(r"/runs/([0-9a-f-]{36})/", page.url).group(1)
    return f"ws://127.0.0.1:{server.port}/ws/runs/{run_id}/?last_seq=0"


@contextmanager
def foreign_site(html: str):
    """A page served from another port of the same host (http://127.0.0.1:<other>/)."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()


HIJACK = """<!doctype html><title>elsewhere</title><script>
window.result = new Promise((resolve) => {
  const ws = new WebSocket(new URLSearchParams(location.search).get('ws'));
  const got = [];
  ws.onopen = () => { got.push('open'); ws.send(JSON.stringify({action: 'stop'})); };
  ws.onmessage = (m) => got.push('message');
  ws.onclose = () => resolve(got.concat('closed'));
  setTimeout(() => resolve(got.concat('timeout')), 5000);
});
</script>"""


def test_a_page_on_another_port_cannot_open_the_runs_socket(page, server):
    start_run(page, server, prompt="Count down from 3.", model="demo:countdown", before_model=True)
    page.wait_for_selector("#pause-box[data-point='before_model'][data-step='0']")
    url, run_page = ws_url(page, server), page.url
    with foreign_site(HIJACK) as site:
        attacker = page.context.new_page()           # same browser, same cookies for 127.0.0.1
        attacker.goto(site + "?ws=" + url)
        assert attacker.evaluate("window.result") == ["closed"]          # refused in the handshake
        attacker.close()
    # the same script on the IDE's own origin does connect (so the refusal above is the origin)
    own = page.evaluate("""(url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => { ws.close(); resolve('open'); };
      ws.onclose = () => resolve('closed');
    })""", url)
    assert own == "open"
    page.goto(run_page)
    assert wait_state(page, "paused") == "paused"                        # nobody stopped it
    page.click("#pause-box form[action$='/stop/'] button")
    wait_state(page, "stopped")


def raw_handshake(server, path: str, origin: str, cookie: str) -> bytes:
    """The status line of a websocket handshake sent to daphne directly."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Origin: {origin}\r\nCookie: {cookie}\r\n\r\n").encode())
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\r\n", 1)[0]


def test_raw_handshakes_with_a_foreign_origin_are_refused(page, server):
    start_demo(page, server, "countdown")
    path = ws_url(page, server).split(str(server.port), 1)[1]
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    assert b" 101 " in raw_handshake(server, path, server.url, cookie)
    for origin in ("http://127.0.0.1:9999", f"https://127.0.0.1:{server.port}",
                   f"http://localhost:{server.port}", "null"):
        status = raw_handshake(server, path, origin, cookie)
        assert b" 403 " in status, (origin, status)


def test_a_share_link_shows_only_the_shared_run_in_forks(page, server):
    server.manage("shell", "-c", (
        "from spellide.web.models import Run; from django.contrib.auth import get_user_model as g; "
        "u = g().objects.get(username='tester'); "
        "root = Run.objects.create(owner=u, title='Unshared parent', status='completed'); "
        "Run.objects.create(owner=u, title='Shared fork', status='completed', parent_run=root, "
        "fork_step=1, share_token='browser-share-token'); "
        "Run.objects.create(owner=u, title='Unshared sibling', status='failed', parent_run=root, "
        "fork_step=2)"))
    anon = page.context.browser.new_context()         # no cookies: only the link
    try:
        pg = anon.new_page()
        pg.goto(server.url + "/share/browser-share-token/forks/")
        assert "Shared fork" in pg.inner_text("#forks-view")
        assert "Unshared" not in pg.content()
        pg.click(".views a:has-text('Setup')")
        pg.wait_for_selector("#setup-view")
        assert "Unshared" not in pg.content()
    finally:
        anon.close()
