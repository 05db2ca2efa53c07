"""Safe defaults: the server listens on this machine only unless told otherwise; viewers on other
machines watch and draw but control the shared run only with the control token; same-origin
Socket.IO; security headers and a page without inline script; no debugger; no path from user
input to the filesystem."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser

import pytest
import torch
import requests
import socketio

from server import create_app
from server.__main__ import main, parse_args
from server.settings import Settings
from server.web.access import (CONTROL_TOKEN_HEADER, EMBEDDED_MESSAGE, NO_TOKEN_MESSAGE, WRONG_TOKEN_MESSAGE,
                               is_local_environ, require_control)
from tests.support.helpers import REPO, disconnect_all, socketio_client, wait_for

TOKEN = "a-test-control-token-0123456789"
REMOTE = "203.0.113.7"  # TEST-NET-3: an address that is certainly not this machine
CONTROL_EVENTS = [
    ("train:start", None), ("train:pause", None), ("train:step", {"batches": 1}),
    ("train:reset", None), ("config:update", {"lr": 0.01}),
]


@pytest.fixture
def token_app(small_dataset, tmp_path):
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu",
                      "control_token": TOKEN}, dataset=small_dataset)
    yield app
    app.extensions["playground"].shutdown()


def remote_viewer(app, *, auth=None, headers=None, address=REMOTE):
    """A Socket.IO test client whose connection comes from `address`."""
    http = app.test_client()
    http.environ_base["REMOTE_ADDR"] = address
    return app.extensions["playground"].socketio.test_client(
        app, flask_test_client=http, auth=auth, headers=headers)


def visible_state(session):
    state = session.state()
    return {key: state[key] for key in ("status", "run_id", "config", "step", "notice")}


def received(messages, name):
    return [message["args"][0] for message in messages if message["name"] == name]


def access_told(messages):
    """The `access` events a viewer got: what it may do, each with its own owner id (a hash of
    its viewer secret: the runs list's "yours") checked and left out."""
    told = received(messages, "access")
    assert all(re.fullmatch(r"[0-9a-f]{32}", event.get("viewer") or "") for event in told), told
    return [{key: value for key, value in event.items() if key != "viewer"} for event in told]


# ---- where the server listens ---------------------------------------------------------------

def test_the_server_listens_on_this_machine_only_by_default(monkeypatch):
    monkeypatch.delenv("HOST", raising=False)
    assert Settings().host == "127.0.0.1"
    assert parse_args([]).host == "127.0.0.1"
    assert parse_args([]).allow_remote is False


def test_another_interface_is_refused_without_allow_remote(capsys, monkeypatch):
    monkeypatch.delenv("HOST", raising=False)
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert "'0.0.0.0' is not a loopback interface" in error and "--allow-remote" in error


def test_settings_refuse_a_remote_host_unless_asked():
    with pytest.raises(ValueError, match="--allow-remote"):
        Settings(host="192.0.2.10")
    assert Settings(host="192.0.2.10", allow_remote=True).host == "192.0.2.10"
    assert Settings(host="::1").is_local


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_allow_remote_warns_and_prints_a_control_token_that_works(tmp_path):
    """`python -m server --host 0.0.0.0 --allow-remote`: a warning and the token at start-up; a
    viewer through a proxy (a remote browser) is refused control without it, obeyed with it."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HOST", None)
    env.pop("PLAYGROUND_CONTROL_TOKEN", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "0.0.0.0", "--port", str(port), "--allow-remote",
         "--device", "cpu", "--data-dir", str(tmp_path), "--engines", "1"],  # one engine: quicker to start
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, f"the server stopped: {''.join(lines)}"
            lines.append(line)
            if "?token=" in line:
                break
        output = "".join(lines)
        assert "WARNING: serving on 0.0.0.0" in output
        token = re.search(r"\?token=([A-Za-z0-9_-]+)", output).group(1)
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(url + "/healthz", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)

        proxied = {"X-Forwarded-For": REMOTE}
        watcher = socketio_client(url, headers=proxied, record=("access",))
        controller = socketio_client(url, headers=proxied, auth={"token": token}, record=("access",))
        local = socketio_client(url, record=("access",))
        try:
            refused = watcher.call("train:pause", timeout=10)
            assert refused == {"ok": False, "error": NO_TOKEN_MESSAGE}
            assert watcher.call("predict", {"pixels": [0.0] * 784}, timeout=10)["ok"]
            assert controller.call("train:pause", timeout=10)["ok"]
            assert local.call("train:pause", timeout=10)["ok"]
            assert watcher.received["access"][0]["control"] is False
            assert controller.received["access"][0]["control"] is True
        finally:
            disconnect_all([watcher, controller, local])
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()


# ---- who may control the run -----------------------------------------------------------------

@pytest.mark.parametrize("event, payload", CONTROL_EVENTS)
def test_a_remote_viewer_without_the_token_cannot_control_and_is_told_why(token_app, event, payload):
    session = token_app.extensions["playground"].engine.handle.engine.part().run
    viewer = remote_viewer(token_app)
    before = visible_state(session)
    answer = viewer.emit(event, payload, callback=True)
    assert answer == {"ok": False, "error": NO_TOKEN_MESSAGE}
    assert "watch and draw" in answer["error"] and "control token" in answer["error"]
    assert visible_state(session) == before


def test_a_remote_viewer_without_the_token_still_watches_and_draws(token_app):
    viewer = remote_viewer(token_app)
    greeting = viewer.get_received()
    assert received(greeting, "state"), "the viewer gets the run's state on connect"
    assert access_told(greeting) == [{"control": False, "reason": NO_TOKEN_MESSAGE}]
    answer = viewer.emit("predict", {"pixels": [0.0] * 784}, callback=True)
    assert answer["ok"] and len(answer["probabilities"]) == 10


def test_a_remote_viewer_with_the_token_controls_the_run(token_app):
    session = token_app.extensions["playground"].engine.handle.engine.part().run
    viewer = remote_viewer(token_app, auth={"token": TOKEN})
    assert access_told(viewer.get_received()) == [{"control": True, "reason": None}]
    answer = viewer.emit("train:step", {"batches": 2}, callback=True)
    assert answer["ok"]
    wait_for(lambda: session.state()["step"] == 2, what="the 2 steps asked for")
    assert viewer.emit("config:update", {"lr": 0.01}, callback=True)["ok"]
    assert session.config.lr == 0.01


@pytest.mark.parametrize("auth", [{"token": "not-the-token-at-all-000000"}, {"token": TOKEN + "x"},
                                  {"token": 12345}, {"token": ""}, {"token": None}, {"other": TOKEN}])
def test_a_wrong_or_malformed_token_gives_no_control(token_app, auth):
    session = token_app.extensions["playground"].engine.handle.engine.part().run
    viewer = remote_viewer(token_app, auth=auth)
    before = visible_state(session)
    answer = viewer.emit("train:reset", {"config": {"seed": 3}}, callback=True)
    assert answer["ok"] is False
    expected = WRONG_TOKEN_MESSAGE if isinstance(auth.get("token"), str) and auth["token"] else NO_TOKEN_MESSAGE
    assert answer["error"] == expected
    assert visible_state(session) == before


def test_a_viewer_on_this_machine_needs_no_token(token_app):
    viewer = remote_viewer(token_app, address="127.0.0.1")
    assert viewer.emit("train:step", None, callback=True)["ok"]
    assert access_told(viewer.get_received()) == [{"control": True, "reason": None}]


@pytest.mark.parametrize("environ, local", [
    ({"REMOTE_ADDR": "127.0.0.1"}, True),
    ({"REMOTE_ADDR": "127.0.0.53"}, True),
    ({"REMOTE_ADDR": "::1"}, True),
    ({"REMOTE_ADDR": "::ffff:127.0.0.1"}, True),
    ({"REMOTE_ADDR": "192.0.2.2"}, False),
    ({"REMOTE_ADDR": "10.0.0.5"}, False),
    ({"REMOTE_ADDR": "fd00::2"}, False),
    ({"REMOTE_ADDR": "not an address"}, False),
    # A proxy on this machine connects from loopback: what it forwards is a remote browser.
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.4"}, False),
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_FORWARDED": "for=198.51.100.4"}, False),
    ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "198.51.100.4"}, False),
])
def test_what_counts_as_a_local_client(environ, local):
    assert is_local_environ(environ) is local


def test_http_control_needs_the_token_header_from_a_remote_address(token_app):
    """The check HTTP uploads use: 403 JSON without X-Control-Token, through with it."""
    @token_app.post("/test-only/control")
    def controlled():
        require_control()
        return {"done": True}

    http = token_app.test_client()
    http.environ_base["REMOTE_ADDR"] = REMOTE
    refused = http.post("/test-only/control")
    assert refused.status_code == 403 and refused.get_json() == {"error": NO_TOKEN_MESSAGE}
    wrong = http.post("/test-only/control", headers={CONTROL_TOKEN_HEADER: "wrong-token-0123456789"})
    assert wrong.status_code == 403 and wrong.get_json() == {"error": WRONG_TOKEN_MESSAGE}
    assert http.post("/test-only/control", headers={CONTROL_TOKEN_HEADER: TOKEN}).get_json() == {"done": True}
    assert token_app.test_client().post("/test-only/control").get_json() == {"done": True}


def test_each_server_start_makes_a_new_random_token(small_dataset, tmp_path):
    tokens = set()
    for _ in range(2):
        app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu"}, dataset=small_dataset)
        tokens.add(app.extensions["playground"].control_token)
        app.extensions["playground"].shutdown()
    assert len(tokens) == 2 and all(len(token) >= 32 for token in tokens)


# ---- same origin, headers, the page ----------------------------------------------------------

def test_socketio_refuses_a_foreign_origin(live_server):
    with pytest.raises(socketio.exceptions.ConnectionError):
        socketio_client(live_server.url, headers={"Origin": "http://evil.example"})
    same = socketio_client(live_server.url)  # websocket-client sends the page's own origin
    try:
        assert same.call("predict", {"pixels": [0.0] * 784}, timeout=10)["ok"]
    finally:
        same.disconnect()


@pytest.mark.parametrize("path", ["/", "/healthz", "/vendor/plotly.min.js", "/static/js/main.js",
                                  "/no-such-page"])
def test_every_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    response.close()
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["frame-ancestors"] == "'none'" and directives["default-src"] == "'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def frame_ancestors_of(response) -> str:
    response.close()
    csp = response.headers["Content-Security-Policy"]
    return dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())["frame-ancestors"]


RUN_VIEW = "/?run=p-0123456789ab&embed=1"


def test_only_one_runs_read_only_view_may_be_framed_and_only_by_notebooks_on_this_machine(client):
    framed = client.get(RUN_VIEW)
    assert frame_ancestors_of(framed) == "http://localhost:* http://127.0.0.1:*"
    assert "X-Frame-Options" not in framed.headers  # it cannot name origins; CSP does
    for path in ("/", "/?run=p-0123456789ab", "/?run=shared&embed=1", "/?embed=1",
                 RUN_VIEW + "&token=" + "x" * 20,  # the control token in the address: never framed
                 "/?run=p-0123456789ab&embed=yes", "/?run=p-0123456789ab%3Bx&embed=1", "/healthz?run=p-0123456789ab&embed=1"):
        response = client.get(path)
        assert frame_ancestors_of(response) == "'none'", path
        assert response.headers["X-Frame-Options"] == "DENY", path


@pytest.mark.parametrize("origins, expected", [
    (["https://hub.example.org"], "https://hub.example.org"),
    ([], "'none'"),  # --frame-ancestors none: no page frames anything
])
def test_frame_ancestors_name_the_pages_that_may_frame_a_runs_view(small_dataset, tmp_path, origins, expected):
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "frame_ancestors": origins},
                     dataset=small_dataset)
    try:
        assert frame_ancestors_of(app.test_client().get(RUN_VIEW)) == expected
    finally:
        app.extensions["playground"].shutdown()


@pytest.mark.parametrize("flag", ["*", "localhost:8888", "http://x.org/notebooks", "http://a.org; script-src *",
                                  "ftp://a.org", "http://a.org:99999", "'self'"])
def test_a_frame_ancestor_that_is_no_origin_is_refused_in_words(capsys, flag):
    assert main(["--frame-ancestors", flag]) == 2
    error = capsys.readouterr().err
    assert f"frame ancestor {flag!r} is not an origin" in error and "http://localhost:*" in error


def test_none_with_origins_is_refused_in_words(capsys):
    assert main(["--frame-ancestors", "none", "--frame-ancestors", "http://a.org"]) == 2
    assert "give it alone" in capsys.readouterr().err


def test_a_framed_view_never_controls_even_on_this_machine(token_app):
    session = token_app.extensions["playground"].engine.handle.engine.part().run
    viewer = remote_viewer(token_app, auth={"embed": True, "token": TOKEN}, address="127.0.0.1")
    assert access_told(viewer.get_received()) == [{"control": False, "reason": EMBEDDED_MESSAGE}]
    before = visible_state(session)
    assert viewer.emit("train:step", {"batches": 1}, callback=True) == {"ok": False, "error": EMBEDDED_MESSAGE}
    assert visible_state(session) == before


class ScriptFinder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.inline_handlers, self._in_script = [], [], False
        self.inline_code = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.inline_handlers += [name for name in attrs if name.lower().startswith("on")]
        self.inline_handlers += [name for name, value in attrs.items()
                                 if value and value.strip().lower().startswith("javascript:")]
        if tag == "script":
            self.scripts.append(attrs)
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_code.append(data)


def test_the_page_has_no_inline_script_or_event_handler_attributes(client):
    finder = ScriptFinder()
    finder.feed(client.get("/").get_data(as_text=True))
    assert finder.scripts, "the page loads its scripts"
    assert all(script.get("src") for script in finder.scripts)
    assert finder.inline_code == [] and finder.inline_handlers == []


def test_no_debugger_and_no_tracebacks(app, client):
    assert app.debug is False
    assert client.get("/console").status_code == 404  # Werkzeug's debugger console
    assert b"Traceback" not in client.get("/no-such-page").data


@pytest.mark.parametrize("path", [
    "/vendor/../server/app.py", "/vendor/..%2Fserver%2Fapp.py", "/vendor/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/vendor/plotly.min.js%00.txt", "/static/../server/app.py", "/static/..%2fserver%2fapp.py",
    "/static/%2e%2e/%2e%2e/etc/passwd", "/vendor//etc/passwd", "/static//etc/passwd",
])
def test_no_user_path_reaches_the_filesystem(client, path):
    response = client.get(path, follow_redirects=True)
    response.close()
    assert response.status_code in (400, 404)
    assert b"import" not in response.data and b"root:" not in response.data


# ---- the page, seen from another machine ---------------------------------------------------------

@pytest.fixture
def token_live_server(small_dataset, tmp_path):
    from tests.support.helpers import LiveServer
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu",
                      "control_token": TOKEN}, dataset=small_dataset)
    with LiveServer(app) as server:
        yield server


def open_as_remote(page, url):
    """Chromium on this machine, seen by the server as a browser elsewhere (as through a proxy)."""
    page.context.set_extra_http_headers({"X-Forwarded-For": REMOTE})
    page.goto(url)
    page.wait_for_selector('[data-testid="connection"][data-state="connected"]', timeout=60_000)


@pytest.mark.browser
def test_a_remote_page_without_the_token_says_it_is_watching_only(page, token_live_server):
    open_as_remote(page, token_live_server.url)
    badge = page.locator('[data-testid="access"]')
    badge.wait_for(state="visible", timeout=30_000)
    assert badge.text_content() == "watching only"
    # In plain words (no token jargon for a student); the controls it cannot use are off.
    assert badge.get_attribute("title").startswith("The shared run is the teacher's")
    page.wait_for_function("() => document.querySelector('[data-testid=train-start]').disabled", timeout=30_000)
    assert page.locator('[data-testid="train-start"]').get_attribute("title").startswith("The shared run is the teacher's")
    assert token_live_server.session.status == "idle"
    (REPO / "artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "artifacts" / "access_watching_only.png"))


@pytest.mark.browser
def test_a_remote_page_opened_with_the_token_controls_and_hides_it(page, token_live_server):
    token_live_server.session.reset({"steps_per_second": 5})  # a run that outlasts the test
    open_as_remote(page, f"{token_live_server.url}/?token={TOKEN}")
    assert "token" not in page.url, "the token is taken out of the address bar"
    page.wait_for_function("() => document.body.dataset.access === 'control'", timeout=30_000)
    assert not page.locator('[data-testid="access"]').is_visible()
    page.click('[data-testid="train-start"]')
    page.wait_for_function("() => document.querySelector('[data-testid=status]').textContent === 'running'",
                           timeout=60_000)
    assert token_live_server.session.status == "running"
    page.reload()  # the tab keeps the token (sessionStorage), the address bar does not show it
    page.wait_for_function("() => document.body.dataset.access === 'control'", timeout=30_000)
    page.click('[data-testid="train-pause"]')
    page.wait_for_function("() => document.querySelector('[data-testid=status]').textContent === 'paused'",
                           timeout=60_000)


def outward_address():
    """This machine's address on its network (not loopback), or None when it has none. A UDP
    socket 'connected' to a TEST-NET address picks the interface without sending anything."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


@pytest.fixture
def outward_live_server(small_dataset, tmp_path):
    """The live server on this machine's network address: Chromium reaches it from a real
    non-loopback peer address, as a viewer on another machine does (and, like one, the page is
    not a secure context there)."""
    from werkzeug.serving import make_server

    from tests.support.helpers import NoDelayRequestHandler
    from tests.support.helpers import LiveServer

    address = outward_address()
    if address is None:
        pytest.fail("this machine has no non-loopback IPv4 address to serve a 'remote' viewer from")
    # The server is meant to be reached by that address (as --host with --allow-remote would
    # say): its Host check accepts it.
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "control_token": TOKEN,
                      "host": address, "allow_remote": True}, dataset=small_dataset)
    server = LiveServer(app)
    server.server.server_close()  # bound to loopback: serve on the network address instead
    server.server = make_server(address, 0, app, threaded=True, request_handler=NoDelayRequestHandler)
    server.port = server.server.server_port
    server.url = f"http://{address}:{server.port}"
    import threading
    server.thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    with server:
        yield server


@pytest.mark.browser
def test_a_remote_viewer_opened_with_the_token_uploads_the_downloaded_checkpoint(page, outward_live_server, tmp_path):
    """The token leaves the address bar at start-up; the upload still carries it (X-Control-Token
    from the one place that keeps it), so the server takes the file."""
    from tests.support.browser import TIMEOUT_MS, PlaygroundPage, by_id

    server = outward_live_server
    server.session.step(3)
    playground = PlaygroundPage(page).open(server, f"?token={TOKEN}")
    assert "token" not in page.url
    page.wait_for_function("() => document.body.dataset.access === 'control'", timeout=TIMEOUT_MS)
    sent_tokens = []
    page.on("request", lambda request: sent_tokens.append(request.headers.get(CONTROL_TOKEN_HEADER.lower()))
            if request.url.endswith("/api/checkpoint") and request.method == "POST" else None)

    download_link = playground.by_id("download-checkpoint")
    download_link.scroll_into_view_if_needed()
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        download_link.click()
    checkpoint = tmp_path / "model.pt"
    download.value.save_as(checkpoint)
    expected = {name: tensor.clone() for name, tensor in server.session.trainer.model.state_dict().items()}
    server.session.reset()  # fresh weights: the upload must bring the downloaded ones back
    page.wait_for_function(f"() => document.querySelector('{by_id('step-count')}').textContent.startsWith('step 0 ')",
                           timeout=TIMEOUT_MS)

    playground.by_id("upload-checkpoint").set_input_files(str(checkpoint))
    page.wait_for_selector(f'{by_id("checkpoint-status")}[data-kind="ok"]', timeout=TIMEOUT_MS)
    assert sent_tokens == [TOKEN]
    loaded = server.session.trainer.model.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in expected.items())
    assert "model.pt" in playground.text("checkpoint-status")
