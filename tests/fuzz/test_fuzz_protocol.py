"""Bad input below the events: raw websocket frames that are not valid Socket.IO, property-based
(hypothesis) and hand-picked (deep nesting, lying attachment counts, unknown namespaces). The
server drops or refuses each; the run is unchanged; another viewer is answered throughout."""
from __future__ import annotations

import json
import threading

import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.web.transport import MAX_ATTACHMENTS
from tests.support.helpers import socketio_client

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
BLANK = {"pixels": [0.0] * 784}


def raw_connection(server):
    """A bare websocket that has done the Engine.IO and Socket.IO handshakes, nothing more."""
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=5, origin=server.url)
    try:
        assert ws.recv().startswith("0{")  # Engine.IO open
        ws.send("40")
        # The greeting (state, access, ...) may come before the Socket.IO connect answer.
        for _ in range(50):
            message = ws.recv()
            if isinstance(message, str) and message.startswith("40{"):
                return ws
        raise AssertionError("no Socket.IO connect answer")
    except BaseException:
        close_quietly(ws)
        raise


def close_quietly(ws):
    try:
        ws.close(timeout=1)
    except (websocket.WebSocketException, OSError):
        pass  # the server had already closed it
    finally:
        ws.shutdown()


@pytest.fixture
def server_with_viewer(live_server):
    viewer = socketio_client(live_server.url)
    yield live_server, viewer
    viewer.disconnect()


def run_fingerprint(session):
    state = session.state()
    return {key: state[key] for key in ("status", "run_id", "config", "step")}


def still_serving(server, viewer):
    assert viewer.call("predict", BLANK, timeout=10)["ok"]
    assert threading.active_count() < 200


frame_bodies = st.one_of(
    st.text(max_size=200),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                 lambda inner: st.one_of(st.lists(inner, max_size=4),
                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                 max_leaves=15).map(lambda v: json.dumps(v)),
    st.sampled_from(['["predict"]', '["train:reset",{"config":{"seed":"x"}}]', '["train:start",1,2,3]',
                     '[{"_placeholder":true,"num":0}]', '["predict",{"_placeholder":true,"num":7}]',
                     '["__proto__",{}]', '[null]', '[]', '{}', '["connect"]', '["disconnect"]']),
)
frames = st.one_of(
    st.tuples(st.sampled_from(["4", "42", "43", "44", "45", "451-", "46", "41", "40", "2", "3", "5", "6",
                               "7", "9", "42/nowhere,", "4212", "99999999999999999999", ""]),
              frame_bodies).map(lambda parts: parts[0] + parts[1]),
    st.binary(max_size=300),
)


@FUZZ
@given(frame=frames)
def test_garbage_frames_are_dropped_and_change_nothing(server_with_viewer, frame):
    server, viewer = server_with_viewer
    before = run_fingerprint(server.session)
    ws = raw_connection(server)
    try:
        (ws.send_binary if isinstance(frame, bytes) else ws.send)(frame)
        ws.send('42["train:pause"]')  # a harmless real request after the garbage
    except (websocket.WebSocketException, OSError):
        pass  # the server may close a connection that breaks the protocol
    finally:
        close_quietly(ws)
    after = run_fingerprint(server.session)
    assert after["config"] == before["config"] and after["run_id"] == before["run_id"]
    still_serving(server, viewer)


@pytest.mark.parametrize("frame", [
    "42" + "[" * 100_000 + "]" * 100_000,  # json.loads recursion
    '42["predict",' + "[" * 50_000 + "]" * 50_000 + "]",
    '42["predict",{"pixels":' + "[" * 900 + "0" + "]" * 900 + "}]",
    "42" + json.dumps(["predict", {"pixels": [[0.5] * 784] * 50}]),
    '42["predict",{"pixels":[' + ",".join(["1e999"] * 784) + "]}]",
    '42["predict",{"pixels":[' + ",".join(["NaN"] * 784) + "]}]",
    '42["predict",{"image":{"width":99999999999999999999999,"height":1,"data":"AAAA"}}]',
    "42/admin,[\"train:reset\"]",
    '4' + "9" * 99 + '["predict"]',
])
def test_hand_picked_malformed_packets(server_with_viewer, frame):
    server, viewer = server_with_viewer
    before = run_fingerprint(server.session)
    ws = raw_connection(server)
    try:
        ws.send(frame)
    finally:
        close_quietly(ws)
    assert run_fingerprint(server.session) == before
    still_serving(server, viewer)


def test_a_packet_cannot_declare_endless_binary_attachments(server_with_viewer):
    """The server would hold every frame until the declared count arrives; past the cap the
    header is dropped, so the frames that follow are not kept."""
    server, viewer = server_with_viewer
    socketio = server.app.extensions["playground"].socketio
    ws = raw_connection(server)
    try:
        ws.send(f'4{MAX_ATTACHMENTS + 1}-["predict",{{"_placeholder":true,"num":0}}]')
        for _ in range(5):
            ws.send_binary(bytes(100_000))
        assert viewer.call("predict", BLANK, timeout=10)["ok"]  # the frames have been handled
        assert sum(len(p.attachments) for p in socketio.server._binary_packet.values()) == 0
    finally:
        close_quietly(ws)


def test_a_real_binary_request_still_works_through_the_cap(server_with_viewer):
    server, viewer = server_with_viewer
    image = bytearray(28 * 28)
    image[14 * 28 + 10: 14 * 28 + 18] = b"\xff" * 8
    answer = viewer.call("predict", {"image": {"width": 28, "height": 28, "data": bytes(image)}}, timeout=10)
    assert answer["ok"] and sum(answer["input"]) > 0
