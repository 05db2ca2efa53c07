"""DNS rebinding and cross-site writes (issue 14, item 1): the server answers only to the Hosts it
is meant to be reached by, on every HTTP route and on the Socket.IO handshake, and a request
that changes something must come from one of its own pages (Origin). Real requests to a live
server; a page at evil.example whose name now points at 127.0.0.1 is played by sending exactly
what its browser would: `Host: evil.example:5000` and the matching Origin."""
from __future__ import annotations

import io
import json

import pytest
import requests
import torch
import websocket
from pydantic import ValidationError

from server import create_app
from server.__main__ import parse_args
from server.settings import Settings
from tests.support.helpers import LiveServer, ServerProcess, socketio_client

OCTET = "application/octet-stream"
EVIL = {"Host": "evil.example:5000", "Origin": "http://evil.example:5000"}
REFUSED_HOST = ("refused: this server does not answer to the name 'evil.example' (the request's Host). If that name "
                "really is this machine, start the server with --allowed-host evil.example. (A page reaching a local "
                "server under a name it does not know is how a DNS rebinding attack works.)")


def saved(state_dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def weights_of(server) -> dict:
    answer = requests.get(server.url + "/api/checkpoint", timeout=30)
    assert answer.status_code == 200
    return torch.load(io.BytesIO(answer.content), weights_only=True)


def other_weights(server) -> bytes:
    return saved({k: v + 1.0 for k, v in weights_of(server).items()})


def assert_weights_unchanged(server, before):
    after = weights_of(server)
    for key, tensor in before.items():
        assert torch.equal(after[key], tensor), f"{key} changed"


@pytest.fixture
def server_at(small_dataset, tmp_path):
    """Start live servers with given settings; all stopped after."""
    started = []

    def start(**settings):
        app = create_app({"testing": True, "data_dir": str(tmp_path / f"data{len(started)}"), "device": "cpu",
                          **settings}, dataset=small_dataset)
        server = LiveServer(app).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


def refused_with_words(answer, words=REFUSED_HOST):
    assert answer.status_code == 403, answer.text[:200]
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"error": words}  # the words and nothing else


# ---- a rebound name --------------------------------------------------------------------------------

def test_a_rebound_name_can_neither_read_nor_replace_the_weights(live_server):
    before = weights_of(live_server)
    refused_with_words(requests.get(live_server.url + "/api/checkpoint", headers=EVIL, timeout=10))
    refused_with_words(requests.post(live_server.url + "/api/checkpoint", data=other_weights(live_server),
                                     headers={**EVIL, "Content-Type": OCTET}, timeout=30))
    assert_weights_unchanged(live_server, before)
    assert live_server.session.trainer.global_step == 0


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/setup", "/api/export.py", "/vendor/plotly.min.js",
                                  "/static/js/main.js", "/api/runs/1/checkpoint", "/no-such-page"])
def test_every_route_refuses_a_rebound_name(live_server, path):
    refused_with_words(requests.get(live_server.url + path, headers=EVIL, timeout=10))


def websocket_handshake(server, **options) -> websocket.WebSocket:
    url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    return websocket.create_connection(url, timeout=10, **options)


def receive_until(ws, prefix: str, limit: int = 50) -> str:
    """The first message starting with `prefix` (broadcasts may come before it)."""
    for _ in range(limit):
        message = ws.recv()
        if isinstance(message, str) and message.startswith(prefix):
            return message
    raise AssertionError(f"no message starting with {prefix!r} in {limit}")


def test_the_socketio_handshake_refuses_a_rebound_name(live_server):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket_handshake(live_server, host=EVIL["Host"], origin=EVIL["Origin"])
    assert refused.value.status_code == 403
    assert json.loads(refused.value.resp_body) == {"error": REFUSED_HOST}

    # The same handshake with the server's own name is a Socket.IO session that can control.
    ws = websocket_handshake(live_server)
    try:
        assert ws.recv().startswith("0{")  # Engine.IO open
        ws.send("40")
        receive_until(ws, "40{")  # Socket.IO connected (the greeting may come first)
        ws.send('421["train:reset",{}]')
        assert json.loads(receive_until(ws, "431")[3:])[0]["ok"] is True
    finally:
        ws.close()


def test_a_host_header_that_is_not_a_host_is_refused_in_words(live_server):
    answer = requests.get(live_server.url + "/healthz", headers={"Host": "a b"}, timeout=10)
    refused_with_words(answer, "refused: the request's Host header 'a b' is not a host name")


# ---- normal use goes on ------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.:{port}", "[::1]:{port}",
                                  "app.localhost:{port}"])
def test_loopback_names_are_served(live_server, host):
    answer = requests.get(live_server.url + "/healthz", headers={"Host": host.format(port=live_server.port)},
                          timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"


def test_the_page_can_upload_from_its_own_origin_and_a_real_client_connects(live_server):
    own = {"Origin": live_server.url, "Content-Type": OCTET}
    assert requests.post(live_server.url + "/api/checkpoint", data=other_weights(live_server), headers=own,
                         timeout=30).status_code == 200
    localhost = {"Host": f"localhost:{live_server.port}", "Origin": f"http://localhost:{live_server.port}",
                 "Content-Type": OCTET}
    assert requests.post(live_server.url + "/api/checkpoint", data=other_weights(live_server), headers=localhost,
                         timeout=30).status_code == 200
    client = socketio_client(live_server.url, record=())
    try:
        assert client.call("train:reset", {}, timeout=10)["ok"]
    finally:
        client.disconnect()


# ---- writes from another site ----------------------------------------------------------------------

@pytest.mark.parametrize("origin", ["http://evil.example:5000", "http://127.0.0.1:1", "null", "http://localhost"])
def test_a_write_from_another_origin_is_refused_in_words_and_changes_nothing(live_server, origin):
    before = weights_of(live_server)
    answer = requests.post(live_server.url + "/api/checkpoint", data=other_weights(live_server),
                           headers={"Origin": origin, "Content-Type": OCTET}, timeout=30)
    refused_with_words(answer, f"refused: a page from {origin} may not change this server; only its own pages "
                               f"(at 127.0.0.1:{live_server.port}) may. Open the playground at its own address.")
    assert_weights_unchanged(live_server, before)


def test_a_write_without_an_origin_is_not_a_page_and_goes_on_to_the_usual_checks(live_server):
    answer = requests.post(live_server.url + "/api/checkpoint", data=other_weights(live_server),
                           headers={"Content-Type": OCTET}, timeout=30)
    assert answer.status_code == 200  # curl --data-binary, as the docs show


# ---- more names ---------------------------------------------------------------------------------------

def test_allowed_hosts_add_names_and_nothing_else(server_at):
    server = server_at(allowed_hosts=["Playground.Example.org"])
    named = {"Host": f"playground.example.org:{server.port}"}
    assert requests.get(server.url + "/healthz", headers=named, timeout=10).status_code == 200
    upload = requests.post(server.url + "/api/checkpoint", data=other_weights(server), timeout=30,
                           headers={**named, "Origin": f"http://playground.example.org:{server.port}",
                                    "Content-Type": OCTET})
    assert upload.status_code == 200
    refused_with_words(requests.get(server.url + "/healthz", headers=EVIL, timeout=10))
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket_handshake(server, host=EVIL["Host"], origin=EVIL["Origin"])
    ws = websocket_handshake(server, host=named["Host"], origin=f"http://{named['Host']}")
    assert ws.recv().startswith("0{")
    ws.close()


def test_bound_to_every_interface_it_answers_to_the_machines_names_and_addresses(server_at):
    import socket

    server = server_at(host="0.0.0.0", allow_remote=True)
    for host in (socket.gethostname(), "192.0.2.10", "[2001:db8::1]"):
        answer = requests.get(server.url + "/healthz", headers={"Host": f"{host}:{server.port}"}, timeout=10)
        assert answer.status_code == 200, host
    refused_with_words(requests.get(server.url + "/healthz", headers=EVIL, timeout=10))


def test_bound_to_one_address_it_answers_to_that_address(server_at):
    server = server_at(host="192.0.2.10", allow_remote=True)
    assert requests.get(server.url + "/healthz", headers={"Host": "192.0.2.10:5000"}, timeout=10).status_code == 200
    answer = requests.get(server.url + "/healthz", headers={"Host": "192.0.2.11:5000"}, timeout=10)
    assert answer.status_code == 403 and "'192.0.2.11'" in answer.json()["error"]


def test_the_allowed_host_flag_repeats_and_is_validated():
    args = parse_args(["--allowed-host", "a.example", "--allowed-host", "b.example"])
    assert args.allowed_hosts == ["a.example", "b.example"]
    assert parse_args([]).allowed_hosts is None
    assert Settings(allowed_hosts=["A.Example.", "::1"]).allowed_hosts == ["a.example", "::1"]
    for bad in ("http://a.example", "a.example:5000", "a b", ""):
        with pytest.raises(ValidationError, match="is not a host name or address"):
            Settings(allowed_hosts=[bad])


@pytest.mark.slow
def test_python_m_server_refuses_a_rebound_name_on_http_and_on_the_websocket(tmp_path):
    """The same checks in the processes users run (gunicorn's worker, the engine apart), not only
    in the test server: the weights cannot be read or replaced, and no socket is granted."""
    with ServerProcess(tmp_path / "data", "--engines", "1") as server:  # one engine: quicker to start
        refused_with_words(requests.get(server.url + "/api/checkpoint", headers=EVIL, timeout=10))
        refused_with_words(requests.post(server.url + "/api/checkpoint", data=b"not weights",
                                         headers={**EVIL, "Content-Type": OCTET}, timeout=30))
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket_handshake(server, host=EVIL["Host"], origin=EVIL["Origin"])
        assert refused.value.status_code == 403
        assert json.loads(refused.value.resp_body) == {"error": REFUSED_HOST}
        assert requests.get(server.url + "/healthz", timeout=10).json()["step"] == 0  # nothing was run
        assert requests.get(server.url + "/api/checkpoint", timeout=30).status_code == 200  # its own name works
