"""Watch your own network (issue 20): a user's own script, training its own model in its own
loop with `linear_playground.watch` (installed with pip from client/), against a real
`python -m server`. The run is on its link like any run: listed, read-only to a page, finished
with the script's last weights, and its predictions are the user's model's."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.support import helpers
from tests.support.helpers import ServerProcess, socketio_client, wait_for
from tests.support.watch_scripts import finished, key_of, make_model, start_script

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("watch-server") / "data", "--device", "cpu", "--engines", "1") as server:
        yield server


def page_on(server, key):
    """A page's connection on the run's link (what `?run=<key>` does)."""
    viewer = socketio_client(server.url)
    answer = viewer.call("run:watch", {"run": key}, timeout=30)
    assert answer["ok"], answer
    return viewer, answer


def test_the_client_is_a_distribution_of_its_own_that_needs_nothing_of_the_server(installed_client):
    assert (installed_client / "linear_playground" / "watch.py").exists()
    assert not (installed_client / "server").exists()
    sources = "".join(path.read_text() for path in (installed_client / "linear_playground").glob("*.py"))
    assert "from server" not in sources and "import server" not in sources
    assert "pickle" not in sources  # only data crosses


@pytest.mark.parametrize("kind, first_layer", [("question", "hidden"), ("sequential", "1")])
def test_a_users_script_shows_its_own_network_on_its_link_and_the_page_predicts_as_its_model(
        server, installed_client, tmp_path, kind, first_layer):
    process = start_script(kind, server.url, tmp_path, installed_client, steps=240)
    lines, stderr = finished(process)
    opened, last = lines[0], lines[-1]
    key = last["key"]
    assert opened["opened"] in (key, None)  # None: the server answered after watch() returned (a busy machine)
    assert key.startswith("p-") and last["link"] == f"/?run={key}"
    assert last["shows_network"] is True and last["why_not"] is None
    assert last["close_s"] < 2.0
    assert "linear_playground" not in stderr, stderr  # no warning: reached, never refused, never lost

    viewer, answer = page_on(server, key)
    try:
        state = answer["state"]
        watched = state["watched"]
        assert answer["owner"] == "someone" and answer["control"] is False  # read-only for a page
        assert state["status"] == "done" and state["step"] == 240
        assert watched["name"] == f"my own {kind}" and watched["layers"][0]["path"] == first_layer
        assert watched["layers"][0]["in_features"] == 784 and watched["shows_network"]
        assert any(module["type"] == "Linear" and "in_features=784" in module["text"] for module in watched["tree"])
        losses = [point["loss"] for point in state["history"]]
        assert len(losses) >= 3 and losses[-1] < losses[0]  # the loss went down, on the page

        # The page's controls are the script's: refused in words.
        refused = viewer.call("train:start", {}, timeout=30)
        assert not refused["ok"] and "someone else's" in refused["error"]

        # Drawing: the page's prediction is the user's model's, with its final weights.
        model = make_model(kind, tmp_path / f"{kind}.pt")
        pixels = torch.rand(784, generator=torch.Generator().manual_seed(3)).tolist()
        prediction = viewer.call("predict", {"pixels": pixels}, timeout=30)
        assert prediction["ok"], prediction
        seen = torch.tensor(prediction["input"], dtype=torch.float32).reshape(1, 784)
        with torch.no_grad():
            out = model(seen)
            theirs = out if kind == "question" else F.softmax(out, dim=1)
        np.testing.assert_allclose(prediction["probabilities"], theirs[0].numpy(), atol=1e-3)
        assert prediction["step"] == 240

        # Listed in Runs, named as the script named it, finished.
        runs = viewer.call("runs:list", timeout=30)
        record = next(run for run in runs["runs"] if run["name"] == f"my own {kind}")
        assert record["status"] == "done"
    finally:
        viewer.disconnect()


@pytest.mark.parametrize("kind, image", [("grey", (1, 32, 32)), ("colour_said", (3, 32, 32))])
def test_the_canvas_predicts_with_a_scripts_model_that_reads_another_image(server, installed_client, tmp_path,
                                                                           kind, image):
    """32x32 grey (1,024 inputs) and the user's image_shape=(3, 32, 32): the page's drawing is
    resampled to the model's image, and the answer is the user's own model's for that input."""
    lines, _ = finished(start_script(kind, server.url, tmp_path, installed_client, steps=120, pause_s=0.005))
    last = lines[-1]
    assert last["predicts"] is True and last["shows_network"] is False  # the user's run.predicts
    viewer, answer = page_on(server, last["key"])
    try:
        watched = answer["state"]["watched"]
        assert watched["predicts"] is True and watched["input_image"] == list(image)
        pixels = torch.zeros(28, 28)
        pixels[4:24, 13:16] = 1.0  # a "1", as the canvas sends it (white strokes on black: 1 = ink)
        prediction = viewer.call("predict", {"pixels": pixels.reshape(-1).tolist()}, timeout=30)
        assert prediction["ok"], prediction
        assert prediction["model_input"]["shape"] == list(image) and prediction["step"] == 120
        channels, height, width = image
        seen = F.interpolate(pixels.reshape(1, 1, 28, 28), size=(height, width), mode="bilinear", align_corners=False)
        seen = seen.expand(1, channels, height, width).reshape(1, -1)
        np.testing.assert_allclose(prediction["model_input"]["values"], seen[0].numpy(), atol=1e-5)
        with torch.no_grad():
            theirs = F.softmax(make_model(kind, tmp_path / f"{kind}.pt")(seen), dim=1)[0].numpy()
        np.testing.assert_allclose(prediction["probabilities"], theirs, atol=1e-3)
        assert prediction["prediction"] == int(theirs.argmax())
    finally:
        viewer.disconnect()


def test_a_network_the_page_cannot_follow_is_watched_with_its_curves_and_says_which_step(
        server, installed_client, tmp_path):
    lines, _ = finished(start_script("residual", server.url, tmp_path, installed_client, steps=60, pause_s=0.005))
    last = lines[-1]
    assert last["shows_network"] is False and last["predicts"] is False
    assert "does not take" in last["why_not"], last["why_not"]
    viewer, answer = page_on(server, last["key"])
    try:
        assert answer["state"]["watched"]["why_not"] == last["why_not"]
        assert answer["state"]["status"] == "done" and len(answer["state"]["history"]) >= 1
    finally:
        viewer.disconnect()


def test_no_server_there_the_loop_goes_on_with_one_warning_and_close_is_quick(installed_client, tmp_path):
    url = f"http://127.0.0.1:{helpers.free_port()}"
    started = time.monotonic()
    lines, stderr = finished(start_script("sequential", url, tmp_path, installed_client, steps=100, pause_s=0.005))
    assert lines[0]["opened"] is None and lines[-1]["steps"] == 100
    assert lines[-1]["close_s"] < 2.0
    warnings = [line for line in stderr.splitlines() if "linear_playground" in line]
    assert len(warnings) == 1 and "cannot reach" in warnings[0], stderr
    assert time.monotonic() - started < 60


def test_the_server_killed_and_restarted_under_a_running_script_gets_the_run_back(
        installed_client, tmp_path, monkeypatch):
    data = tmp_path / "data"
    first = ServerProcess(data, "--device", "cpu")
    port = first.port
    process = start_script("question", first.url, tmp_path, installed_client, steps=4000, pause_s=0.01)
    try:
        key = key_of(process)
        assert key
        time.sleep(2.0)
        for pid in [*helpers.descendants(first.pid), first.pid]:  # gone, mid-run: every process at once
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        first.stop()
        time.sleep(2.0)
        monkeypatch.setattr(helpers, "free_port", lambda: port)
        second = ServerProcess(data, "--device", "cpu")
        try:
            viewer = socketio_client(second.url)
            try:
                def back():
                    answer = viewer.call("run:watch", {"run": key}, timeout=30)
                    return answer["ok"] and answer["state"]["step"] > 0
                wait_for(back, timeout=60, what="the script's run back on the restarted server")
            finally:
                viewer.disconnect()
            lines, stderr = finished(process, timeout=180)
            assert lines[-1]["key"] == key and lines[-1]["close_s"] < 2.0
            told = [line for line in stderr.splitlines() if "linear_playground" in line]
            assert len(told) == 2 and "lost" in told[0] and "back on the page" in told[1], stderr
        finally:
            second.stop()
    finally:
        if process.poll() is None:
            process.kill()
        first.stop()


def test_a_controllable_scripts_loop_is_held_and_stepped_from_the_page(server, installed_client, tmp_path):
    process = start_script("sequential", server.url, tmp_path, installed_client, steps=100_000, pause_s=0.002,
                           controllable=True)
    try:
        key = key_of(process)
        viewer, _ = page_on(server, key)
        try:
            def step_now() -> int:
                return viewer.call("run:watch", {"run": key}, timeout=30)["state"]["step"]

            wait_for(lambda: step_now() > 20, timeout=60, what="the script's first steps")
            assert viewer.call("train:pause", {}, timeout=30)["ok"]
            time.sleep(1.5)  # the script hears it within a few tenths of a second
            held_at = step_now()
            time.sleep(1.0)
            assert step_now() == held_at  # Pause: its loop waits in run.step()
            assert viewer.call("train:step", {"batches": 1}, timeout=30)["ok"]
            wait_for(lambda: step_now() == held_at + 1, timeout=10, what="exactly one step let through")
            time.sleep(1.0)
            assert step_now() == held_at + 1
            assert viewer.call("train:start", {}, timeout=30)["ok"]
            wait_for(lambda: step_now() > held_at + 20, timeout=30, what="the loop going on after Resume")
        finally:
            viewer.disconnect()
    finally:
        process.kill()
        process.communicate(timeout=30)


NO_CLOSE = '''
import sys, torch, torch.nn.functional as F
from torch import nn
from linear_playground import watch
model = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters())
run = watch(model, sys.argv[1], name="no close", wait=60)  # the key before the loop, however busy the machine
for i in range(200):
    x = torch.rand(64, 784); y = torch.randint(0, 10, (64,))
    loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    run.step(loss=loss.item())
print(run.key, flush=True)
'''


def test_a_script_that_ends_without_close_finishes_its_run_all_the_same(server, installed_client, tmp_path):
    script = tmp_path / "no_close.py"
    script.write_text(NO_CLOSE)
    done = subprocess.run([sys.executable, str(script), server.url], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed_client)})
    assert done.returncode == 0, done.stderr[-2000:]
    key = done.stdout.strip().splitlines()[-1]
    viewer, answer = page_on(server, key)
    viewer.disconnect()
    assert answer["state"]["status"] == "done" and answer["state"]["step"] == 200


def probabilities_bound(model, weights_seen: list, seen: torch.Tensor) -> np.ndarray:
    """How far the page's probabilities may be from the script's model at the snapshot's `step`.

    The server's copy of each weight is within half its row's int8 step of the script's: a step
    is the row's largest change since the copy the delta was added to, / 127 (error feedback: the
    copy's own error is sent again, so it stays within that). That change is at most the row's
    largest change from any earlier snapshot the script took (`weights_seen`: the delta's base is
    one of them), or its largest weight (a whole snapshot); so each error is within
    eps_row = that / 254 (x 254/253 for the carried error). Rounding errors are independent and
    uniform: a layer's output j moves by a sum with standard deviation eps_j * sqrt((sum x^2 + 1) / 3);
    sigmoid's slope is at most 1/4; softmax moves p_k by at most a factor exp(2 m) for logits that
    move by at most m, taken at 6 standard deviations."""
    state = {name: tensor.double() for name, tensor in model.state_dict().items()}
    names = [("hidden.weight", "hidden.bias"), ("output.weight", "output.bias")]

    def eps(weight_name, bias_name):
        rows = torch.cat([state[weight_name], state[bias_name][:, None]], dim=1).abs()
        largest = rows.amax(dim=1)
        for earlier in weights_seen:
            change = torch.cat([state[weight_name] - earlier[weight_name].double(),
                                (state[bias_name] - earlier[bias_name].double())[:, None]], dim=1).abs()
            largest = torch.maximum(largest, change.amax(dim=1))
        return largest / 253

    x = seen.double()[0]
    eps1, eps2 = eps(*names[0]), eps(*names[1])
    h = torch.sigmoid(state["hidden.weight"] @ x + state["hidden.bias"])
    sigma_h = 0.25 * eps1 * torch.sqrt((x.pow(2).sum() + 1) / 3)
    sigma_logits = torch.sqrt(state["output.weight"].pow(2) @ sigma_h.pow(2) + eps2.pow(2) * (h.pow(2).sum() + 1) / 3)
    with torch.no_grad():
        p = model(seen)[0].double()
    return (p * (torch.exp(2 * 6 * sigma_logits.max()) - 1)).numpy()


def test_while_a_script_trains_the_page_predicts_with_its_weights_of_the_newest_snapshot(
        server, installed_client, tmp_path):
    """int8 deltas keep the page's weights about a second old (docs/performance.md) and close to
    the script's: the page's probabilities at a snapshot's step are within the bound derived in
    `probabilities_bound` of the script's model at that step; after close(), within 1e-3."""
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    process = start_script("question", server.url, tmp_path, installed_client, steps=900, pause_s=0.01,
                           snapshots_to=snapshots)
    pixels = torch.rand(784, generator=torch.Generator().manual_seed(5)).tolist()
    observed: dict[int, dict] = {}  # snapshot step -> the page's prediction with its weights
    try:
        key = key_of(process)
        viewer, _ = page_on(server, key)
        try:
            def snapshot_step():
                state = viewer.call("run:watch", {"run": key}, timeout=30)["state"]
                return state["watched"]["snapshot_step"] if state["status"] == "running" else None

            while process.poll() is None and len(observed) < 4:
                before = snapshot_step()
                time.sleep(0.2)  # the replica is written right after the snapshot is taken in
                prediction = viewer.call("predict", {"pixels": pixels}, timeout=30)
                if before is not None and prediction["ok"] and snapshot_step() == before and before > 1:
                    observed.setdefault(before, prediction)
                time.sleep(0.3)
        finally:
            viewer.disconnect()
        lines, stderr = finished(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert "WARNING" not in stderr and len(observed) >= 2, (observed.keys(), stderr[-2000:])

    taken = sorted(int(path.stem) for path in snapshots.glob("*.pt"))
    for step, prediction in observed.items():
        model = make_model("question", snapshots / f"{step}.pt")
        seen = torch.tensor(prediction["input"], dtype=torch.float32).reshape(1, 784)
        earlier = [torch.load(snapshots / f"{t}.pt", weights_only=True) for t in taken if t < step]
        bound = probabilities_bound(model, earlier, seen)
        with torch.no_grad():
            theirs = model(seen)[0].numpy()
        error = np.abs(np.asarray(prediction["probabilities"]) - theirs)
        assert (error <= bound + 1e-6).all(), (step, error.max(), bound.max())
        print(f"step {step}: |page - script| {error.max():.2e}, bound {bound.max():.2e}")

    viewer, answer = page_on(server, lines[-1]["key"])
    try:
        final = make_model("question", tmp_path / "question.pt")
        prediction = viewer.call("predict", {"pixels": pixels}, timeout=30)
        seen = torch.tensor(prediction["input"], dtype=torch.float32).reshape(1, 784)
        with torch.no_grad():
            np.testing.assert_allclose(prediction["probabilities"], final(seen)[0].numpy(), atol=1e-3)
    finally:
        viewer.disconnect()


def test_a_delta_the_server_has_no_base_for_brings_whole_weights_without_a_warning(server, caplog):
    """The client hears "send whole weights" (here: its copy of the server's weights names a step
    the server never had, as after a lost answer) and sends whole int8 weights next: the page's
    weights go on, and the user is told nothing (nothing to act on)."""
    sys.path.insert(0, str(helpers.REPO / "client"))
    from linear_playground import watch

    model = make_model("question")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sent, lose_base, refused_from = [], threading.Event(), []
    with watch(model, server.url, name="no base", wait=60) as run:
        send = run._send_snapshot

        def sending(snapshot):  # in the sender's thread: what goes out, as the server reads it
            if lose_base.is_set() and run._wire.held is not None and not snapshot.final:
                lose_base.clear()
                run._wire.held_step = 10 ** 9  # a base the server does not hold
                refused_from.append(len(sent))
            sent.append(dict(run._wire.encode(snapshot.values, exact=snapshot.final).fields, step=snapshot.step))
            send(snapshot)

        run._send_snapshot = sending

        def train(seconds):
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                x = torch.rand(64, 784)
                loss = F.nll_loss(torch.log(model(x)), (x[:, :10]).argmax(1))
                opt.zero_grad(); loss.backward(); opt.step()  # noqa: E702
                run.step(loss=loss.item())
                time.sleep(0.005)

        train(2.5)
        wait_for(lambda: run._wire.held_step is not None, timeout=30, what="a snapshot the server took")
        lose_base.set()
        train(3.5)
    kinds = [(s.get("delta", False), s["dtype"]) for s in sent[refused_from[0]:]]
    assert kinds[0] == (True, "int8") and sent[refused_from[0]]["base"] == 10 ** 9  # refused
    assert kinds[1] == (False, "int8")  # whole, next
    assert (True, "int8") in kinds[2:]  # then deltas again, on the whole one's weights
    viewer, answer = page_on(server, run.key)
    viewer.disconnect()
    assert answer["state"]["watched"]["snapshot_step"] == run.step_count  # the last, exact one
    assert not [r for r in caplog.records if r.name == "linear_playground"]
