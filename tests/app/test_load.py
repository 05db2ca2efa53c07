"""Load, in the reduced form CI can afford (bench/load.py is the full form: 50 viewers and the
training throughput they leave): many real Socket.IO viewers watch a run at full speed, each
drawing a digit every 200 ms; every prediction is answered and nobody is dropped. Viewers that
vanish mid-stream (their sockets killed) leave no sockets, subscriptions or threads behind."""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import pytest

from tests.support.helpers import disconnect_all, socketio_client

VIEWERS = 12  # bench/load.py runs 50
PREDICT_EVERY_S = 0.2
SECONDS = 4
BLANK = {"pixels": [0.0] * 784}
FULL_SPEED = {"config": {"steps_per_second": None, "epochs": 200}}


def drawing_viewer(client, seconds, answers, failures):
    """One viewer: a prediction every 200 ms, as a person drawing, for `seconds`."""
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while next_at < deadline:
        try:
            answer = client.call("predict", BLANK, timeout=10)
            (answers if answer.get("ok") else failures).append(answer)
        except Exception as err:  # a timeout is a failure to answer
            failures.append(repr(err))
        next_at += PREDICT_EVERY_S
        time.sleep(max(0.0, next_at - time.monotonic()))


@pytest.mark.slow
def test_many_viewers_drawing_during_training_are_all_answered_and_none_dropped(live_server):
    controller = socketio_client(live_server.url)
    viewers = [socketio_client(live_server.url) for _ in range(VIEWERS)]
    try:
        assert controller.call("train:start", FULL_SPEED, timeout=10)["ok"]
        answers = [[] for _ in viewers]
        failures = [[] for _ in viewers]
        threads = [threading.Thread(target=drawing_viewer, args=(v, SECONDS, a, f))
                   for v, a, f in zip(viewers, answers, failures)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=SECONDS + 30)
        step_after = live_server.session.state()["step"]
        assert controller.call("train:pause", timeout=10)["ok"]

        expected = int(SECONDS / PREDICT_EVERY_S)
        assert all(not f for f in failures), [f[:2] for f in failures if f]
        assert all(len(a) >= expected for a in answers), [len(a) for a in answers]
        assert all(v.connected for v in viewers), "no viewer was dropped"
        assert all(len(v.received["metrics"]) >= 5 for v in viewers), "every viewer watched the run"
        assert step_after > 50, "training kept going under the load"
    finally:
        disconnect_all([controller, *viewers])


def kill(client, abortive: bool) -> None:
    """Vanish like a closed laptop or a killed tab: no Socket.IO goodbye, just a dead TCP socket
    (an abortive close sends a reset, the other an orderly FIN)."""
    raw = client.eio.ws.sock
    if abortive:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
    else:
        raw.shutdown(socket.SHUT_RDWR)


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.slow
def test_viewers_that_vanish_mid_stream_leave_nothing_behind(live_server):
    app = live_server.app
    socketio = app.extensions["playground"].socketio
    eio = socketio.server.eio
    # Engine.IO sweeps closed sockets out of its map once per ping_timeout (20 s in production);
    # a 2 s cycle lets the test wait seconds instead of half a minute. bench/load.py measures
    # the production timing.
    eio.ping_interval, eio.ping_timeout = 1, 2
    survivor = socketio_client(live_server.url)
    try:
        assert survivor.call("train:start", FULL_SPEED, timeout=10)["ok"]
        time.sleep(1.0)
        baseline_threads = threading.active_count()

        vanishing = [socketio_client(live_server.url) for _ in range(8)]
        assert wait_for(lambda: all(len(v.received["metrics"]) >= 2 for v in vanishing), 15), \
            "the viewers were receiving the stream when they vanished"
        gone = {socketio.server.manager.sid_from_eio_sid(v.eio.sid, "/") for v in vanishing}
        for i, viewer in enumerate(vanishing):
            kill(viewer, abortive=bool(i % 2))

        eio_sids = {v.eio.sid for v in vanishing}
        assert wait_for(lambda: all(eio.sockets.get(s) is None or eio.sockets[s].closed for s in eio_sids), 10), \
            "the server noticed every dead socket"
        inside = app.extensions.get("inside")
        if inside is not None:  # the live views feature keeps per-viewer stream state
            assert wait_for(lambda: not (gone & set(inside._clients)), 10), \
                "the live views forgot the vanished viewers"
        assert wait_for(lambda: not (gone & set(socketio.server.manager.rooms.get("/", {}))), 10)
        assert wait_for(lambda: set(eio.sockets) == {survivor.eio.sid}, 20), \
            f"engine.io still holds {len(eio.sockets) - 1} vanished sockets"
        assert wait_for(lambda: threading.active_count() <= baseline_threads, 30), \
            f"{threading.active_count() - baseline_threads} threads outlived their viewers: " \
            f"{sorted(t.name for t in threading.enumerate())}"

        assert survivor.connected
        assert survivor.call("predict", BLANK, timeout=10)["ok"]
        count = len(survivor.received["metrics"])
        assert wait_for(lambda: len(survivor.received["metrics"]) > count, 5), "the survivor still watches"
    finally:
        survivor.call("train:pause", timeout=10)
        disconnect_all([survivor])


def test_binary_messages_sent_from_several_threads_at_once_arrive_whole(live_server):
    """A binary message is a header frame plus attachment frames. The training thread broadcasts
    (evaluation digits), the live-views thread sends frames to each viewer, handlers answer:
    if their frames interleave, the viewer misreads the stream. Each must arrive whole."""
    socketio = live_server.app.extensions["playground"].socketio
    viewer = socketio_client(live_server.url, record=("to-all", "to-one"))
    errors = []
    handler = logging.Handler()
    handler.emit = lambda record: errors.append(record.getMessage())
    client_log = logging.getLogger("engineio.client")
    client_log.addHandler(handler)
    sent = {"to-all": 0, "to-one": 0}
    try:
        sid = viewer.get_sid()
        # A burst, not an endless flood: a client with more than 20,000 packets waiting is
        # disconnected as one that does not read (server/web/transport.py).
        per_thread = 2000

        def send(event, **to):
            for _ in range(per_thread):
                socketio.emit(event, {"bytes": bytes(2000)}, **to)
                with viewer.lock:
                    sent[event] += 1

        threads = [threading.Thread(target=send, args=("to-all",)),
                   threading.Thread(target=send, args=("to-one",), kwargs={"to": sid}),
                   threading.Thread(target=send, args=("to-all",))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        total = sum(sent.values())
        assert wait_for(lambda: sum(len(v) for v in viewer.received.values()) >= total, 30), \
            f"{total - sum(len(v) for v in viewer.received.values())} of {total} messages were lost"
        assert not errors, f"the viewer misread the stream: {errors[:3]}"
        assert all(len(m["bytes"]) == 2000 for v in viewer.received.values() for m in v)
    finally:
        client_log.removeHandler(handler)
        disconnect_all([viewer])


@pytest.mark.slow
def test_run_after_run_the_servers_memory_stays_flat(live_server):
    """A class starts run after run while people draw. Each run's weights and optimizer state
    are made, used and freed by different threads; the server's memory must not grow with each
    one (bench/endurance.py is the 30-minute form)."""
    import os

    from bench.common import rss_mb

    controller = socketio_client(live_server.url, record=("state",))
    drawers = [socketio_client(live_server.url, record=()) for _ in range(3)]
    stop = threading.Event()

    def draw(client):
        while not stop.is_set():
            try:
                client.call("predict", BLANK, timeout=10)
            except Exception:
                pass
            time.sleep(0.05)

    threads = [threading.Thread(target=draw, args=(c,), daemon=True) for c in drawers]
    for thread in threads:
        thread.start()
    rss = []
    try:
        for _ in range(12):
            answer = controller.call("train:reset", {"config": {"steps_per_second": None, "epochs": 3}}, timeout=30)
            assert answer["ok"], answer
            assert controller.call("train:start", timeout=30)["ok"]
            deadline = time.monotonic() + 60
            while live_server.session.status != "done" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert live_server.session.status == "done"
            rss.append(rss_mb(os.getpid()))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        disconnect_all([controller, *drawers])
    growth = rss[-1] - rss[2]  # after two runs of warm-up
    assert growth < 12, f"the server grew {growth:.1f} MB over 10 runs: {[round(r) for r in rss]}"
