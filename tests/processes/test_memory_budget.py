"""Memory as a budget (issue 23, item 1): each engine admits runs within `--engine-memory`,
estimated from the setup before a run is built; past it a refusal in words that says what
would fit (and that does fit); the engine's memory stays within the budget; a run put away
gives its memory back (measured in a real engine process)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.engine.memory_budget import MemoryBudget, estimate_run_bytes
from server.errors import LimitError
from server.experiment import TrainConfig
from tests.support.helpers import REPO, ServerProcess, socketio_client, wait_for

MB = 2**20
BIGGEST = {"hidden_sizes": [2048] * 4}
BUDGET_MB = 2000  # the engine (~400 MB with its warm-up) and one biggest run (~1.2 GB), not two


def rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def viewer(url, name):
    return socketio_client(url, record=("state", "run"), auth={"viewer": f"{name}-0123456789abcdef"})


def test_the_estimate_grows_with_the_layers_and_a_refusal_says_what_fits():
    default, biggest = TrainConfig(), TrainConfig().updated(BIGGEST)
    assert estimate_run_bytes(biggest) > 5 * estimate_run_bytes(default)
    budget = MemoryBudget(limit=2000 * MB, base=300 * MB)
    budget.admit("p-a", biggest)
    with pytest.raises(LimitError) as refused:
        budget.admit("p-b", biggest)
    words = str(refused.value)
    assert "not enough memory" in words and "784 → 2048 → 2048 → 2048 → 2048 → 10" in words
    assert "What fits now: 784 → " in words
    hidden = [int(n) for n in words.split("hidden=")[1].rstrip(")").split(",")]
    budget.admit("p-b", TrainConfig().updated({"hidden_sizes": hidden}))  # what it says fits does
    assert budget.held() <= 2000 * MB - 300 * MB
    budget.release("p-a")
    budget.admit("p-c", biggest)  # room again once a run is put away


def test_runs_past_the_budget_are_refused_in_words_and_the_engine_stays_within_it(tmp_path):
    with ServerProcess(tmp_path / "data", "--engines", "2", "--engine-memory", f"{BUDGET_MB}M") as server:
        students = [viewer(server.url, f"student{i}") for i in range(3)]
        try:
            answers = [student.call("run:create", {"config": BIGGEST}, timeout=120) for student in students]
            admitted = [(s, a) for s, a in zip(students, answers) if a.get("ok")]
            refused = [a for a in answers if not a.get("ok")]
            assert len(admitted) == 1, answers
            assert len(refused) == 2
            for answer in refused:
                assert "not enough memory on this engine" in answer["error"], answer
                assert "What fits now" in answer["error"], answer

            # the admitted biggest run works: it trains, is replayed, is evaluated
            student, made = admitted[0]
            assert student.call("train:step", {"batches": 20}, timeout=120)["ok"]
            wait_for(lambda: any(s.get("step") == 20 for s in student.received["state"]), timeout=120,
                     what="20 steps of the biggest network")
            frame = student.call("replay:frame", {"step": 10}, timeout=120)
            assert frame.get("ok"), frame

            # what the refusal says fits is admitted
            words = refused[0]["error"]
            hidden = [int(n) for n in words.split("hidden=")[1].rstrip(")").split(",")]
            other = students[1] if students[1] is not student else students[2]
            fits = other.call("run:create", {"config": {"hidden_sizes": hidden}}, timeout=120)
            assert fits.get("ok"), fits
            assert other.call("train:step", {"batches": 5}, timeout=120)["ok"]

            engine_pid = server.engine_pid(1)  # the private runs' engine
            assert engine_pid is not None
            rss = rss_of(engine_pid)
            print(f"engine RSS with the biggest run and the suggested one: {rss / MB:.0f} MB "
                  f"(budget {BUDGET_MB} MB)")
            assert rss <= BUDGET_MB * MB
        finally:
            for student in students:
                student.disconnect()


def test_a_run_put_away_gives_its_memory_back(tmp_path):
    """A real engine process (bench/engine_memory.py): the biggest run made, trained, watched,
    replayed and put away, twice; what it kept after is a small part of what it took, and
    what the budget counted for it is at or above what it took at its peak."""
    out = tmp_path / "memory.json"
    done = subprocess.run([sys.executable, "bench/engine_memory.py", "--rounds", "2", "--steps", "10",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    results = json.loads(out.read_text())
    for name, rounds in results["setups"].items():
        for row in rounds:
            assert row["grew_mb"] <= row["budgeted_mb"], (name, row)
    biggest = results["setups"]["biggest"]
    for row in biggest:
        assert row["kept_after_mb"] <= 0.2 * row["grew_mb"], biggest
    # made and put away again: the engine does not grow round after round
    assert biggest[1]["after_mb"] <= biggest[0]["after_mb"] + 30, biggest


def test_a_setup_change_past_the_budget_is_refused_and_leaves_the_run_as_it_was(small_dataset, tmp_path):
    from server.engine.engine import Engine
    from server.engine.memory_budget import process_rss

    # room for the default network and a little more, not for the biggest
    engine = Engine(small_dataset, data_dir=tmp_path, holds_shared=False, pace=50.0,
                    memory_limit=process_rss() + 400 * MB)
    try:
        key = engine.command("run:create", {"owner": "alice", "config": {"hidden_sizes": [64]}})["run"]
        for command, args in (("train:reset", {"config": BIGGEST}), ("config:update", {"changes": BIGGEST}),
                              ("train:start", {"config": BIGGEST})):
            with pytest.raises(LimitError) as refused:
                engine.command(command, {"run": key, "owner": "alice", **args})
            assert "not enough memory" in str(refused.value) and "What fits now" in str(refused.value)
            state = engine.command("state", {"run": key})["state"]
            assert state["config"]["hidden_sizes"] == [64] and state["status"] == "idle", command
        # a smaller change is admitted
        engine.command("train:reset", {"run": key, "owner": "alice", "config": {"hidden_sizes": [128]}})
        assert engine.command("state", {"run": key})["state"]["config"]["hidden_sizes"] == [128]
    finally:
        engine.close()


def test_engine_memory_that_is_not_a_size_is_refused_in_words(tmp_path):
    done = subprocess.run([sys.executable, "-m", "server", "--engine-memory", "lots", "--data-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--engine-memory: 'lots' is not an amount of memory: give e.g. 2G, 1500M or 800MiB" in done.stderr
