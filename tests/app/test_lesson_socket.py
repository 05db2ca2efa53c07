"""The lesson, the replay and class polls over Socket.IO: every request answered by
acknowledgement, refusals in words that change nothing; only a viewer who may control the
shared run opens, reveals or closes a poll; any viewer answers, once; answers stay anonymous."""
from __future__ import annotations

import pytest

from server.web.access import NO_TOKEN_MESSAGE
from tests.app.test_security import REMOTE, TOKEN, remote_viewer, token_app  # noqa: F401  (fixture)
from tests.support.helpers import wait_for

BLANK = [0.0] * 784
STROKE = [1.0 if (i % 28) in (13, 14) and 4 <= i // 28 <= 23 else 0.0 for i in range(784)]


def received(client, name):
    return [message["args"][0] for message in client.get_received() if message["name"] == name]


@pytest.fixture
def teacher(token_app):  # noqa: F811
    client = token_app.extensions["playground"].socketio.test_client(token_app, flask_test_client=token_app.test_client())
    yield client
    client.disconnect()


@pytest.fixture
def student(token_app):  # noqa: F811
    client = remote_viewer(token_app)
    yield client
    client.disconnect()


def test_a_viewer_without_control_cannot_open_reveal_or_close_a_poll_and_is_told_why(token_app, teacher, student):  # noqa: F811
    for event, payload in (("poll:open", {"step": 1}), ("poll:reveal", None), ("poll:close", None)):
        answer = student.emit(event, payload, callback=True)
        assert answer == {"ok": False, "error": NO_TOKEN_MESSAGE}, event
    assert teacher.emit("poll:get", callback=True) == {"ok": True, "poll": None}


def test_a_poll_reaches_every_viewer_takes_one_answer_each_and_the_teacher_sees_the_count(token_app, teacher, student):  # noqa: F811
    teacher.get_received()
    student.get_received()
    opened = teacher.emit("poll:open", {"step": 1}, callback=True)
    assert opened["ok"], opened
    poll = received(student, "poll")[-1]["poll"]
    assert poll["question"].startswith("nn.Linear(784, 256)") and "counts" not in poll  # no crowd to follow

    assert student.emit("poll:answer", {"poll": poll["id"], "choice": 0}, callback=True)["ok"]
    again = student.emit("poll:answer", {"poll": poll["id"], "choice": 1}, callback=True)
    assert again == {"ok": True, "poll": poll["id"], "choice": 1, "answers": 1, "replaced": True}  # one per viewer
    results = received(teacher, "poll:results")[-1]["poll"]
    assert results["answers"] == 1 and results["counts"] == [0, 1, 0, 0]
    assert received(student, "poll:results") == []  # the counts go to the teacher while it is open

    revealed = teacher.emit("poll:reveal", callback=True)["poll"]
    assert revealed["reveal"]["correct"] == 1
    seen = received(student, "poll")[-1]["poll"]
    assert seen["status"] == "revealed" and seen["counts"] == [0, 1, 0, 0]
    assert teacher.emit("poll:close", callback=True)["ok"]
    assert received(student, "poll")[-1] == {"poll": None}


@pytest.mark.parametrize("event,payload,words", [
    ("poll:answer", {"poll": 1, "choice": 0}, "no class poll open"),
    ("poll:answer", {"poll": 1, "choice": "a"}, "choice"),
    ("poll:answer", {"poll": 1}, "choice"),
    ("poll:open", {"step": 0}, "step"),
    ("poll:open", {"step": 2}, "number"),
    ("poll:open", {"step": "1"}, "step"),
    ("lesson:reveal", {"step": 6}, "draw a digit"),
    ("lesson:reveal", {"step": 11}, "steps 1 to 10"),
    ("lesson:reveal", {"step": 6, "pixels": [2.0] * 784}, "pixel"),
    ("replay:frame", {"step": -1}, "step"),
    ("replay:predict", {"step": 0, "pixels": [0.5] * 10}, "784"),
    ("replay:predict", {"step": 0}, "pixels"),
])
def test_bad_requests_are_refused_in_words(teacher, event, payload, words):
    answer = teacher.emit(event, payload, callback=True)
    assert answer["ok"] is False and words in answer["error"].lower(), answer


def test_the_lesson_reveals_and_the_replay_answers_over_the_socket(app, sio_client, session):
    steps = sio_client.emit("lesson:steps", callback=True)["steps"]
    assert len(steps) >= 8 and steps[5]["kind"] == "drawing"
    before = session.step_count
    session.step(20)  # answers after a moment with the steps so far; the rest follow
    wait_for(lambda: session.step_count == before + 20, timeout=60, what="the 20 steps trained")
    reveal = sio_client.emit("lesson:reveal", {"step": 6, "pixels": STROKE}, callback=True)["reveal"]
    said = sio_client.emit("predict", {"pixels": STROKE}, callback=True)
    assert reveal["prediction"] == said["prediction"] and reveal["weights_step"] == said["step"]

    frame = sio_client.emit("replay:frame", {"step": 0}, callback=True)
    assert frame["ok"] and frame["frame"]["step"] == 0 and frame["frame"]["live_step"] == session.step_count
    then = sio_client.emit("replay:predict", {"step": 0, "pixels": STROKE}, callback=True)
    assert then["ok"] and then["step"] == 0 and then["probabilities"] != said["probabilities"]
