"""Engines that always answer (issue 23, item 3): with one engine holding everything, ten
students asking the learning-rate step's reveal (two real trial runs each) at once do not hold
up the teacher (the run's state, a pause and the runs list answer within a second meanwhile);
a reveal whose student left before its turn is not computed; and putting away a private run
that two viewers watch answers at once (a message handler used to wait on the engine from the
thread that reads the engine's answers: a minute of frozen server). Real sockets, a real pipe,
the engine in a thread of the test."""
from __future__ import annotations

import threading
import time

import pytest

from server import create_app
from server.engine import lesson, lesson_answers, replay
from server.link.line import ASKER_GONE, Commands
from tests.support.helpers import LiveServer, disconnect_all, socketio_client, wait_for

LR_STEP = next(number for number, step in enumerate(lesson.STEPS, 1) if step.key == "learning-rate")
# A setup whose trial runs take a while on this machine (each student's its own learning rate,
# so that no two trials are the same and none comes from the trial cache).
SETUP = {"hidden_sizes": [512], "batch_size": 128}
RECORD = ("state", "run:closed", "run")


@pytest.fixture
def one_engine(small_dataset, tmp_path):
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "engines": 1},
                     dataset=small_dataset)
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def viewers(one_engine):
    made = []

    def connect(auth=None):
        client = socketio_client(one_engine.url, record=RECORD, auth=auth or {})
        made.append(client)
        return client

    yield connect
    disconnect_all([client for client in made if client.connected])


def student(n: int) -> dict:
    return {"viewer": f"student-{n:02d}-0123456789abcdef"}


def timed(client, event, payload=None):
    started = time.monotonic()
    answer = client.call(event, payload, timeout=30)
    return answer, time.monotonic() - started


def trial_rates() -> set:
    """The learning rates the engine trained a trial run for (its trial cache)."""
    return {round(result["lr"], 6) for _, result in list(lesson_answers._trials.values())}


def test_the_teacher_is_answered_while_ten_reveals_compute_and_a_reveal_nobody_waits_for_is_not(viewers):
    teacher = viewers()
    students = [viewers(student(n)) for n in range(11)]
    rates = [round(0.0123 + 0.0007 * n, 6) for n in range(11)]  # each student's own setup
    for client, lr in zip(students, rates):
        made = client.call("run:create", {"config": {**SETUP, "lr": lr}}, timeout=30)
        assert made["ok"], made
    assert not set(rates) & trial_rates()

    answers: dict[int, dict] = {}
    done = threading.Event()

    def answered(n):
        def record(answer):
            answers[n] = answer
            if len(answers) == 10:
                done.set()
        return record

    for n, client in enumerate(students[:10]):
        client.emit("lesson:reveal", {"step": LR_STEP}, callback=answered(n))
    # The eleventh asks too, once the ten are in the engine's queue, and leaves before its turn
    # comes (ten reveals are ahead of it: the first alone trains two trial runs).
    time.sleep(0.5)
    leaver = students[10]
    leaver.emit("lesson:reveal", {"step": LR_STEP})
    time.sleep(0.3)
    leaver.disconnect()

    # Meanwhile the teacher watches, pauses and lists the runs: each answered within a second.
    waits = []
    while not done.is_set():
        for event, payload in (("run:watch", {"run": "shared"}), ("train:pause", None), ("runs:list", None)):
            answer, took = timed(teacher, event, payload)
            assert answer["ok"], (event, answer)
            waits.append((event, took))
        time.sleep(0.1)
    assert len(waits) >= 3, "the reveals ended before the teacher could ask anything"
    assert max(took for _, took in waits) < 1.0, sorted(waits, key=lambda wait: -wait[1])[:5]

    # Every student who stayed got the real answer: two trial runs of their own setup.
    assert done.wait(60)
    for n in range(10):
        reveal = answers[n]
        assert reveal["ok"], reveal
        trials = reveal["reveal"]["trials"]
        assert round(trials[0]["lr"], 6) == rates[n] and trials[1]["lr"] == lesson_answers.BIG_LR
    # The one who left: its trial run was never trained.
    wait_for(lambda: rates[10] not in trial_rates() and set(rates[:10]) <= trial_rates(), timeout=10,
             what="the trial cache to hold the ten asked for")
    time.sleep(1.0)  # its turn has come and gone by now
    assert rates[10] not in trial_rates()


def test_ten_students_asking_the_same_reveal_cost_two_trial_runs(viewers, monkeypatch):
    trained = []
    train_trial = lesson_answers.train_trial

    def counted(config, dataset):  # the real training, counted
        trained.append(config.lr)
        return train_trial(config, dataset)

    monkeypatch.setattr(lesson_answers, "train_trial", counted)
    setup = {**SETUP, "lr": 0.0456, "seed": 4242}
    students = [viewers(student(30 + n)) for n in range(10)]
    for client in students:
        assert client.call("run:create", {"config": setup}, timeout=30)["ok"]
    reveals = [None] * len(students)
    threads = [threading.Thread(target=lambda n=n, c=c: reveals.__setitem__(n, c.call(
        "lesson:reveal", {"step": LR_STEP}, timeout=60))) for n, c in enumerate(students)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert all(reveal and reveal["ok"] for reveal in reveals), reveals
    assert all(reveal["reveal"]["trials"] == reveals[0]["reveal"]["trials"] for reveal in reveals)
    assert sorted(trained) == [0.0456, lesson_answers.BIG_LR]  # once each, for all ten


def test_putting_away_a_run_two_viewers_watch_answers_at_once_with_one_engine(viewers, one_engine, caplog):
    alice = viewers(student(60))
    key = alice.call("run:create", {}, timeout=30)["run"]
    bob = viewers({**student(61), "run": key})
    carol = viewers({**student(62), "run": key})
    for watcher in (bob, carol):
        wait_for(lambda watcher=watcher: watcher.received["run"], what="the watchers are on alice's run")
    counts = {client: len(client.received["state"]) for client in (alice, bob, carol)}
    started = time.monotonic()
    one_engine.engine.runs[key].last_seen = float("-inf")  # her owner gone long enough: put away
    for client in (alice, bob, carol):
        wait_for(lambda client=client: client.received["run:closed"] and client.received["state"][counts[client]:],
                 timeout=10, what="each watcher is told and given the shared run's state")
    took = time.monotonic() - started
    # The server answers everyone meanwhile (before: each watcher's state waited 30 s).
    answer, _ = timed(bob, "runs:list")
    assert answer["ok"]
    assert took < 10, took
    assert not [record for record in caplog.records if "reader thread" in record.getMessage()]


def test_a_replayed_steps_pictures_are_made_once_while_its_point_is_kept(viewers, monkeypatch):
    built = []
    network_of = replay.network_of

    def counted(weights):  # the real network of a kept point's weights, counted
        built.append(weights)
        return network_of(weights)

    monkeypatch.setattr(replay, "network_of", counted)
    alice = viewers(student(70))
    assert alice.call("run:create", {}, timeout=30)["ok"]
    assert alice.call("train:step", {"batches": 3}, timeout=30)["ok"]
    wait_for(lambda: any(s["step"] >= 3 for s in alice.received["state"]), what="three steps")
    first = alice.call("replay:frame", {"step": 0}, timeout=30)
    again = alice.call("replay:frame", {"step": 0}, timeout=30)
    assert first["ok"] and again["ok"], (first, again)
    assert first["frame"]["weights"] == again["frame"]["weights"]
    assert len(built) == 1  # the second time from the kept frame
    later = alice.call("replay:frame", {"step": 3}, timeout=30)
    assert later["ok"] and later["frame"]["step"] != first["frame"]["step"] and len(built) == 2


def test_costly_commands_wait_their_turn_bounded_and_quick_ones_pass_them():
    """The line's command runner on its own, with a plain handler standing for the engine."""
    release = threading.Event()
    answers: dict = {}

    def handler(name, args):
        if name == "lesson:reveal":
            release.wait(10)
        return {"name": name}

    commands = Commands(handler, lambda reply, command: answers.__setitem__(command["id"], reply), costly_waiting=3)
    try:
        now = time.time()
        for n in range(5):  # one computing, three waiting, the fifth refused at once
            commands.submit({"id": n, "name": "lesson:reveal", "args": {}, "asker": f"web:{n}", "sent": now,
                             "timeout": 30})
            time.sleep(0.05)
        commands.submit({"id": "pause", "name": "train:pause", "args": {}})
        wait_for(lambda: "pause" in answers and 4 in answers, timeout=5, what="the pause and the refusal")
        assert answers["pause"]["ok"] and not answers[4]["ok"] and answers[4]["status"] == 429
        assert "busy computing 3 answers" in answers[4]["error"]
        commands.submit({"id": "gone", "name": ASKER_GONE, "args": {"asker": "web:2"}})
        wait_for(lambda: "gone" in answers, timeout=5, what="asker:gone answered")
        release.set()
        wait_for(lambda: all(n in answers for n in range(4)), timeout=10, what="the reveals")
        assert [answers[n]["ok"] for n in range(4)] == [True, True, False, True]
        assert answers[2]["error"] == "lesson:reveal was not computed: its asker left"
    finally:
        release.set()
        commands.shutdown()
