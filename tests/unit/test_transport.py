"""server/web/transport.py changes python-socketio's and python-engineio's behaviour through
private parts of the pinned versions. These tests fail first when an upgrade changes them."""
from __future__ import annotations

import inspect

import engineio
import flask_socketio
import socketio
import simple_websocket
from socketio import base_manager, manager, packet

from server.link import fastjson
from server.link.wire import decode_event, encode_event


def test_the_pinned_versions_are_the_ones_the_patches_were_written_for():
    from importlib.metadata import version
    assert version("python-socketio") == "5.18.1"
    assert version("python-engineio") == "4.15.1"
    assert version("Flask-SocketIO") == "5.7.0"
    assert version("simple-websocket") == "1.1.0"


def test_the_private_parts_the_patches_use_exist():
    server = socketio.Server(async_mode="threading")
    for name in ("_send_packet", "_send_eio_packet", "_handle_event", "packet_class", "environ", "manager", "eio"):
        assert hasattr(server, name), name
    for name in ("rooms", "get_participants", "eio_sid_from_sid", "sid_from_eio_sid", "_generate_ack_id",
                 "pending_connect", "is_connected", "trigger_callback"):
        assert hasattr(server.manager, name), name
    assert "websocket" in server.eio._async
    assert hasattr(server.eio, "sockets")
    assert list(inspect.signature(server._handle_event).parameters) == ["eio_sid", "namespace", "id", "data"]
    assert list(inspect.signature(base_manager.BaseManager._generate_ack_id).parameters) == ["self", "sid", "callback"]
    assert "max_message_size" in inspect.signature(simple_websocket.Server.__init__).parameters
    assert "receive_bytes" in inspect.signature(simple_websocket.Server.__init__).parameters
    assert callable(manager.Manager.emit) and flask_socketio.SocketIO


class ServerPacket(packet.Packet):
    json = fastjson  # what the playground's Socket.IO server encodes with (server/web/app.py)


def test_an_event_encoded_once_is_byte_for_byte_what_python_socketio_sends():
    data = {"step": 3, "data": b"\x00\x01", "nested": [{"bias": b"\xff"}, 1.5], "name": "héllo"}
    encoded = encode_event("inside:weights", data)

    theirs = ServerPacket(packet.EVENT, data=["inside:weights", data], namespace="/", id=7).encode()
    ours = [f"{packet.BINARY_EVENT}{len(encoded.attachments)}-7" + encoded.text, *encoded.attachments]
    assert ours == theirs
    assert decode_event(encoded) == ("inside:weights", data)


def test_an_event_without_bytes_is_a_plain_event_and_non_finite_numbers_become_null():
    encoded = encode_event("metrics", {"loss": float("nan"), "step": 1})
    assert encoded.attachments == ()
    assert encoded.text == '["metrics",{"loss":null,"step":1}]'
    theirs = ServerPacket(packet.EVENT, data=["metrics", {"loss": None, "step": 1}], namespace="/", id=2).encode()
    assert f"{packet.EVENT}2" + encoded.text == theirs


def test_engineio_sends_text_and_bytes_as_message_packets():
    text = engineio.packet.Packet(engineio.packet.MESSAGE, "2[]")
    binary = engineio.packet.Packet(engineio.packet.MESSAGE, b"\x00")
    assert text.encode() == "42[]" and binary.binary and binary.encode() == b"\x00"


def test_the_wire_json_is_compact_and_reads_what_python_clients_write():
    assert fastjson.dumps({"a": [1.5, None, float("nan")], "é": 1}) == '{"a":[1.5,null,null],"é":1}'
    assert fastjson.loads('{"lr": NaN, "x": Infinity}')["x"] == float("inf")
