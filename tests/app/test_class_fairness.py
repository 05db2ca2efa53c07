"""A class that cannot be gamed or starved (issue 23, items 4 and 5), driven over real sockets
as students and a teacher would: a poll counts one answer per viewer secret and per address (a
new answer replaces the old), an open poll's answer reaches only the teacher until it is
revealed; private runs whose owners left come back as places within the grace period (and to
their owners from their records), the 3-runs-per-viewer cap holds across engines, a step on a
queued run waits for a place, the teacher sees every private run and puts any away, and a
private run's key reaches only its owner."""
from __future__ import annotations

import itertools
import time

import pytest

from server import create_app
from tests.support.helpers import CLASS_TOKEN, LiveServer, disconnect_all, socketio_client, wait_for

TOKEN = CLASS_TOKEN  # the conftest's class_server
TEACHER = {"token": TOKEN}


def student_address(number: int) -> dict:
    """A student on another machine, as the proxy in front of the server says (TEST-NET-2)."""
    return {"X-Forwarded-For": f"198.51.100.{number}"}


def secret(name: str) -> str:
    return f"{name}-secret-0123456789abcdef"


@pytest.fixture
def connect(class_server):
    made = []

    def connect(auth=None, headers=None, record=("poll", "poll:results", "run:closed", "runs", "state")):
        client = socketio_client(class_server.url, record=record, auth=auth or {}, headers=headers or {})
        made.append(client)
        return client

    yield connect
    disconnect_all([client for client in made if client.connected])


def latest_results(teacher) -> dict:
    with teacher.lock:
        return teacher.received["poll:results"][-1]["poll"]


# ---- item 4: one vote per viewer ----------------------------------------------------------------

def test_a_student_reconnecting_and_answering_twelve_times_counts_once_with_the_last_choice(connect):
    teacher = connect(TEACHER, student_address(1))
    opened = teacher.call("poll:open", {"step": 1}, timeout=10)
    assert opened["ok"], opened
    poll = opened["poll"]["id"]

    # The same viewer secret, a new connection each time (a reload), answering each time.
    for attempt in range(12):
        student = connect({"viewer": secret("mallory")}, student_address(20))
        answer = student.call("poll:answer", {"poll": poll, "choice": attempt % 4}, timeout=10)
        assert answer["ok"] and answer["answers"] == 1, answer
        assert answer["replaced"] is (attempt > 0)
        student.disconnect()
    wait_for(lambda: latest_results(teacher)["answers"] == 1 and latest_results(teacher)["counts"] == [0, 0, 0, 1],
             what="the teacher to see one answer, the last one (choice 3)")

    # Fresh secrets from the same address: still that one student, its latest choice.
    for attempt in range(12):
        student = connect({"viewer": secret(f"mallory{attempt}")}, student_address(20))
        assert student.call("poll:answer", {"poll": poll, "choice": 0}, timeout=10)["answers"] == 1
        student.disconnect()
    # No secret at all (a connection of its own), same address: the same student again.
    anonymous = connect(headers=student_address(20))
    assert anonymous.call("poll:answer", {"poll": poll, "choice": 1}, timeout=10)["answers"] == 1

    # Two other students, each its own address and secret: three answers.
    for number, choice in ((21, 1), (22, 2)):
        other = connect({"viewer": secret(f"student{number}")}, student_address(number))
        assert other.call("poll:answer", {"poll": poll, "choice": choice}, timeout=10)["ok"]
    wait_for(lambda: latest_results(teacher)["answers"] == 3, what="three students' answers")
    assert latest_results(teacher)["counts"] == [0, 2, 1, 0]

    revealed = teacher.call("poll:reveal", timeout=30)
    assert revealed["ok"] and revealed["poll"]["counts"] == [0, 2, 1, 0] and revealed["poll"]["answers"] == 3


def test_addresses_one_device_makes_up_in_its_ipv6_network_are_one_voter(connect):
    teacher = connect(TEACHER, student_address(1))
    poll = teacher.call("poll:open", {"step": 1}, timeout=10)["poll"]["id"]
    for number, address in enumerate(("2001:db8:1:1::7", "2001:db8:1:1:a:b:c:d", "2001:db8:1:2::7")):
        student = connect({"viewer": secret(f"ipv6-{number}")}, {"X-Forwarded-For": address})
        assert student.call("poll:answer", {"poll": poll, "choice": number}, timeout=10)["ok"]
    wait_for(lambda: latest_results(teacher)["answers"] == 2, what="two devices' answers")
    assert latest_results(teacher)["counts"] == [0, 1, 1, 0]  # the first /64's last answer, the second's


def test_an_open_polls_answer_is_refused_to_students_until_the_teacher_reveals_it(connect):
    teacher = connect(TEACHER, student_address(1))
    student = connect({"viewer": secret("eve")}, student_address(30))
    assert teacher.call("poll:open", {"step": 1}, timeout=10)["ok"]

    refused = student.call("lesson:reveal", {"step": 1}, timeout=10)
    assert refused == {"ok": False, "error": "the class poll on step 1 is open: its answer is shown when the "
                                             "teacher reveals it (answer the poll on your screen)"}
    # Nor through a copy of the shared run of its own (the same weights give the same answer).
    made = student.call("run:create", {"weights": "shared"}, timeout=60)
    assert made["ok"] and made["owner"] == "you", made
    assert student.call("lesson:reveal", {"step": 1}, timeout=10) == refused
    # Another step's answer is still the student's to ask; the teacher's own, always.
    assert student.call("lesson:reveal", {"step": 3}, timeout=30)["ok"]
    assert teacher.call("lesson:reveal", {"step": 1}, timeout=10)["reveal"]["correct"] == 1
    assert student.call("poll:get", timeout=10)["poll"]["reveal"] is None
    with student.lock:
        assert student.received["poll:results"] == []  # the counts go to the teacher only

    assert teacher.call("poll:reveal", timeout=30)["ok"]
    after = student.call("lesson:reveal", {"step": 1}, timeout=10)
    assert after["ok"] and after["reveal"]["correct"] == 1


# ---- item 5: places come back ---------------------------------------------------------------------

GRACE_S = 3.0  # the owner's grace period for these tests (the default is 90 s: --owner-grace)
RECORD = ("access", "state", "run", "run:closed", "runs", "poll")


@pytest.fixture
def places_server(small_dataset, tmp_path):
    """Two engines for private runs beside the shared run's, a short grace period."""
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "control_token": TOKEN,
                      "engines": 3, "owner_grace_s": GRACE_S}, dataset=small_dataset)
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def join(places_server):
    made = []

    def join(name=None, number=1, **auth):
        who = {"viewer": secret(name)} if name else {}
        client = socketio_client(places_server.url, record=RECORD, auth={**who, **auth}, headers=student_address(number))
        made.append(client)
        wait_for(lambda: client.received["access"], what="the server to say who the viewer is")
        return client

    yield join
    disconnect_all([client for client in made if client.connected])


def private_runs(teacher) -> list:
    answer = teacher.call("runs:private", timeout=10)
    assert answer["ok"], answer
    return answer["runs"]


def test_a_run_whose_owner_left_is_freed_within_the_grace_period_and_comes_back_from_its_record(join, places_server):
    teacher = join(number=1, token=TOKEN)
    alice = join("alice", 40)
    made = alice.call("run:create", {"config": {"hidden_sizes": [32]}}, timeout=60)
    assert made["ok"], made
    key = made["run"]
    assert alice.call("train:step", {"batches": 4}, timeout=30)["state"]["step"] == 4

    # Connected and idle for twice the grace period: the run stays hers.
    time.sleep(2 * GRACE_S)
    assert [run["run"] for run in private_runs(teacher)] == [key]

    alice.disconnect()
    left = time.monotonic()
    wait_for(lambda: time.sleep(0.05) or not private_runs(teacher), timeout=3 * GRACE_S, what="her place to come back")
    freed_after = time.monotonic() - left
    print(f"a place came back {freed_after:.1f} s after its owner left (grace {GRACE_S:g} s)")
    assert freed_after <= GRACE_S + 1.5  # the engines hear who is here three times per grace period

    # She comes back: her record has her run's key (hers to see), and gives her run back as it was.
    alice = join("alice", 40)
    records = [r for r in alice.call("runs:list", timeout=10)["runs"] if r["run_key"] == key]
    assert len(records) == 1 and records[0]["status"] == "paused" and records[0]["steps"] == 4, records
    record = records[0]["id"]
    # Nobody else gets it back (nor sees its key).
    bob = join("bob", 41)
    assert all(r["run_key"] != key for r in bob.call("runs:list", timeout=10)["runs"])
    refused = bob.call("run:create", {"record": record}, timeout=30)
    assert refused["ok"] is False and "not a run of yours" in refused["error"], refused

    back = alice.call("run:create", {"record": record}, timeout=60)
    assert back["ok"] and back["run"] == key and back["owner"] == "you", back
    state = back["state"]
    saved = alice.call("runs:get", {"id": record}, timeout=10)["run"]
    assert state["status"] == "paused" and state["step"] == 4 and len(state["history"]) == len(saved["history"])
    assert state["model"] == made["state"]["model"] and f"run #{record}" in state["notice"]
    assert alice.call("train:step", {"batches": 2}, timeout=30)["state"]["step"] == 6
    wait_for(lambda: any(r["id"] == record and r["steps"] == 6 for r in alice.call("runs:list", timeout=10)["runs"]),
             what="the same record to go on")
    again = alice.call("run:create", {"record": record}, timeout=30)
    assert again["ok"] is False and "still there" in again["error"], again


def test_one_viewer_holds_three_runs_across_engines_and_a_fourth_is_refused(join, places_server):
    mallory = join("mallory", 50)
    keys = []
    for _ in range(3):
        made = mallory.call("run:create", {"config": {"hidden_sizes": [16]}}, timeout=60)
        assert made["ok"], made
        keys.append(made["run"])
    router = places_server.playground.engine
    assert len({router.host_of(key) for key in keys}) == 2  # spread over both engines for private runs
    fourth = mallory.call("run:create", {"config": {"hidden_sizes": [16]}}, timeout=60)
    assert fourth == {"ok": False, "error": "you already have 3 runs of your own on this server: go back to one "
                                            "of them (its link), or wait until one is put away"}
    # ...from another connection with the same secret too; another viewer still gets one.
    assert join("mallory", 50).call("run:create", {}, timeout=60)["ok"] is False
    assert join("carol", 51).call("run:create", {"config": {"hidden_sizes": [16]}}, timeout=60)["ok"]


def test_a_step_on_a_queued_run_waits_for_a_place(small_dataset, tmp_path):
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "engines": 2, "max_runs": 1},
                     dataset=small_dataset)
    with LiveServer(app) as server:
        alice = socketio_client(server.url, auth={"viewer": secret("alice")}, record=RECORD)
        bob = socketio_client(server.url, auth={"viewer": secret("bob")}, record=RECORD)
        try:
            assert alice.call("run:create", {"config": {"steps_per_second": 10, "epochs": 50}}, timeout=60)["ok"]
            assert alice.call("train:start", {}, timeout=10)["state"]["status"] == "running"  # the one place
            assert bob.call("run:create", {}, timeout=60)["ok"]
            stepped = bob.call("train:step", {"batches": 3}, timeout=10)
            assert stepped["ok"] and stepped["state"]["queue_position"] == 1 and stepped["state"]["step"] == 0, stepped
            time.sleep(1.0)  # alice's run trains meanwhile; bob's steps wait
            waiting = [s for s in bob.received["state"] if s.get("queue_position") == 1]
            assert waiting and all(s["step"] == 0 for s in waiting)
            assert alice.call("train:pause", timeout=10)["ok"]  # her place frees: his steps take it
            wait_for(lambda: any(s["step"] == 3 and s["queue_position"] is None for s in bob.received["state"]),
                     what="bob's 3 steps once a place is free")
        finally:
            disconnect_all([alice, bob])


def test_the_teacher_sees_every_private_run_and_puts_any_away(join, places_server):
    teacher = join(number=1, token=TOKEN)
    alice, bob = join("alice", 60), join("bob", 61)
    alice_key = alice.call("run:create", {"config": {"hidden_sizes": [64, 32], "activation": "relu"}}, timeout=60)["run"]
    bob_key = bob.call("run:create", {"config": {"hidden_sizes": [512]}}, timeout=60)["run"]
    assert bob.call("train:step", {"batches": 2}, timeout=30)["ok"]

    listing = teacher.call("runs:private", timeout=10)
    runs = {run["run"]: run for run in listing["runs"]}
    assert set(runs) == {alice_key, bob_key}
    who = {alice_key: alice.received["access"][0]["viewer"], bob_key: bob.received["access"][0]["viewer"]}
    for key, run in runs.items():
        assert run["owner"] == who[key] and run["connections"] == 1
    assert runs[alice_key]["addresses"] == ["198.51.100.60"] and runs[bob_key]["addresses"] == ["198.51.100.61"]
    assert "64" in runs[alice_key]["setup"] and "relu" in runs[alice_key]["setup"].lower()
    assert "512" in runs[bob_key]["setup"] and runs[bob_key]["step"] == 2
    # Memory as the runs hold it: Bob's 784 -> 512 -> 10 network is the bigger one.
    assert runs[bob_key]["memory_bytes"] > runs[alice_key]["memory_bytes"] > 0
    assert runs[bob_key]["memory_bytes"] >= 2 * 4 * (784 * 512 + 512 + 512 * 10 + 10)  # weights and their copy
    assert listing["memory_bytes"] == sum(run["memory_bytes"] for run in runs.values())

    # Students may not look nor put away.
    for event, payload in (("runs:private", None), ("run:put_away", {"run": bob_key})):
        answer = alice.call(event, payload, timeout=10)
        assert answer["ok"] is False and "control token" in answer["error"], (event, answer)

    put = teacher.call("run:put_away", {"run": bob_key}, timeout=30)
    assert put["ok"] and put["run"] == bob_key and isinstance(put["record"], int), put
    wait_for(lambda: bob.received["run:closed"], what="bob to be told")
    assert "the teacher put it away" in bob.received["run:closed"][0]["reason"]
    assert [run["run"] for run in private_runs(teacher)] == [alice_key]
    assert bob.call("run:create", {"record": put["record"]}, timeout=60)["run"] == bob_key  # his, back
    for payload, words in (({"run": "shared"}, "cannot be put away"), ({"run": "p-000000000000"}, "there is no run"),
                           ({"run": "../etc"}, "give")):
        answer = teacher.call("run:put_away", payload, timeout=10)
        assert answer["ok"] is False and words in answer["error"], (payload, answer)


def test_a_private_runs_key_reaches_its_owner_and_those_it_sent_its_link_only(join, places_server):
    alice, bob = join("alice", 70), join("bob", 71)
    key = alice.call("run:create", {"config": {"hidden_sizes": [16]}}, timeout=60)["run"]
    assert alice.call("train:step", {"batches": 2}, timeout=30)["ok"]  # recorded from its first step
    wait_for(lambda: any(r["run_key"] == key for r in alice.call("runs:list", timeout=10)["runs"]),
             what="alice's record with her run's key")
    mine = next(r for r in alice.call("runs:list", timeout=10)["runs"] if r["run_key"] == key)

    listed = bob.call("runs:list", timeout=10)["runs"]
    theirs = next(r for r in listed if r["id"] == mine["id"])
    assert theirs["run_key"] is None and theirs["steps"] == mine["steps"]  # the record is there, not its key
    assert bob.call("runs:get", {"id": mine["id"]}, timeout=10)["run"]["run_key"] is None
    assert alice.call("runs:get", {"id": mine["id"]}, timeout=10)["run"]["run_key"] == key
    # The broadcasts too: after another change of the list, bob's copy has no key, alice's has.
    assert alice.call("runs:rename", {"id": mine["id"], "name": "alice's try"}, timeout=10)["ok"]
    wait_for(lambda: any(r["name"] == "alice's try" for p in bob.received["runs"] for r in p["runs"]),
             what="bob's runs broadcast")
    wait_for(lambda: any(r["name"] == "alice's try" for p in alice.received["runs"] for r in p["runs"]),
             what="alice's runs broadcast")
    assert key not in repr(bob.received)
    assert any(r["run_key"] == key for p in alice.received["runs"] for r in p["runs"])

    # Carol was sent the link: she watches it and sees its key in the list (she has it anyway).
    carol = join("carol", 72, run=key)
    wait_for(lambda: carol.received["run"], what="carol watches alice's run through its link")
    assert any(r["run_key"] == key for r in carol.call("runs:list", timeout=10)["runs"])


def test_with_redis_one_viewer_holds_three_runs_across_engines_and_a_fourth_is_refused(small_dataset, tmp_path,
                                                                                       redis_url, monkeypatch):
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "redis": redis_url, "engines": 2},
                     dataset=small_dataset)
    with LiveServer(app) as server:
        client = server.playground.engine.client
        wait_for(lambda: len(client.engines()) == 2, timeout=60, what="both engines on Redis")
        # and one of them holding the shared run (a viewer's first requests are about it)
        wait_for(lambda: client.engine_for("shared") is not None, timeout=60, what="the shared run held")
        engines = itertools.cycle(sorted(info["engine"] for info in client.engines()))
        # New runs go to the engines in turn (on their own they go to the least loaded, ties at random).
        monkeypatch.setattr(client, "pick_engine", lambda: next(engines))
        mallory = socketio_client(server.url, auth={"viewer": secret("mallory")}, record=RECORD)
        try:
            keys = []
            for _ in range(3):
                made = mallory.call("run:create", {"config": {"hidden_sizes": [16]}}, timeout=60)
                assert made["ok"], made
                keys.append(made["run"])
            assert len({client.engine_for(key) for key in keys}) == 2
            fourth = mallory.call("run:create", {"config": {"hidden_sizes": [16]}}, timeout=60)
            assert fourth["ok"] is False and "you already have 3 runs of your own" in fourth["error"], fourth
        finally:
            mallory.disconnect()


def test_a_private_runs_recorded_weights_go_to_its_owner_and_the_teacher_only(join, places_server):
    import urllib.error
    import urllib.request

    teacher = join(number=1, token=TOKEN)
    alice, bob = join("alice", 80), join("bob", 81)
    assert alice.call("run:create", {"config": {"hidden_sizes": [16]}}, timeout=60)["ok"]
    assert alice.call("train:step", {"batches": 2}, timeout=30)["ok"]
    wait_for(lambda: any(r["owner"] == alice.received["access"][0]["viewer"] and r["checkpoint_step"] == 2
                         for r in teacher.call("runs:list", timeout=10)["runs"]), what="alice's weights recorded")
    record = next(r["id"] for r in teacher.call("runs:list", timeout=10)["runs"]
                  if r["owner"] == alice.received["access"][0]["viewer"])

    def download(headers):
        request = urllib.request.Request(f"{places_server.url}/api/runs/{record}/checkpoint",
                                         headers={**student_address(81), **headers})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    words = (f"run #{record} is someone else's private run: only its owner (or the teacher) can take its weights. "
             "You can overlay its curves.")
    status, body = download({})
    assert status == 403 and words in body.decode(), (status, body[:200])
    status, body = download({"X-Viewer": secret("bob")})
    assert status == 403
    status, body = download({"X-Viewer": secret("alice")})
    assert status == 200 and len(body) > 1000  # a .pt of the 784 -> 16 -> 10 network
    status, _ = download({"X-Control-Token": TOKEN})
    assert status == 200

    # Restoring it into a run of his own would copy its weights too: refused in words.
    assert bob.call("run:create", {"config": {"hidden_sizes": [16]}}, timeout=60)["ok"]
    assert bob.call("runs:restore", {"id": record}, timeout=30) == {"ok": False, "error": words}
    assert bob.call("runs:get", {"id": record}, timeout=10)["ok"]  # its curves stay everyone's


def test_with_redis_two_web_processes_making_runs_for_one_viewer_at_once_make_three(small_dataset, tmp_path,
                                                                                   redis_url):
    """Eight run:create at once for one viewer, four through each of two web processes' lines to
    the engines (the app's, and a second one on the same Redis): three runs, five refusals."""
    import threading

    from server.errors import UserError
    from server.link.redis_router import RedisEngines

    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "redis": redis_url, "engines": 2},
                     dataset=small_dataset)
    with LiveServer(app) as server:
        first = server.playground.engine
        wait_for(lambda: len(first.client.engines()) == 2, timeout=60, what="both engines on Redis")
        second = RedisEngines(redis_url, on_message=lambda message: None)
        second.start()
        results = []

        def make(engines):
            try:
                results.append(engines.create_run({"owner": "one-viewer-on-two-web-processes",
                                                   "config": {"hidden_sizes": [16]}}, timeout=60)["run"])
            except UserError as err:
                results.append(err)

        try:
            threads = [threading.Thread(target=make, args=(engines,)) for engines in [first, second] * 4]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(90)
        finally:
            second.close()
        made = [result for result in results if isinstance(result, str)]
        refused = [str(result) for result in results if not isinstance(result, str)]
        assert len(made) == 3 and len(refused) == 5, results
        assert all("you already have 3 runs of your own" in words for words in refused), refused
