"""Watch your own network on a deployment over Redis (issue 20): `python -m server --redis`
(a real redis-server, engines found through it) takes a user's script's run like one machine
does: its key and link, the curves on the page, the page's predictions the user's model's, the
run finished with the script's last weights and listed in Runs."""
from __future__ import annotations

import numpy as np
import torch

from tests.support.helpers import ServerProcess, socketio_client
from tests.support.watch_scripts import finished, make_model, start_script


def test_a_script_watched_against_a_redis_deployment_shows_its_run(redis_url, installed_client, tmp_path):
    with ServerProcess(tmp_path / "data", "--device", "cpu", "--redis", redis_url, "--engines", "2") as server:
        lines, stderr = finished(start_script("question", server.url, tmp_path, installed_client, steps=240))
        last = lines[-1]
        key = last["key"]
        assert key.startswith("p-") and last["link"] == f"/?run={key}" and last["shows_network"] is True
        assert last["close_s"] < 2.0
        assert "linear_playground" not in stderr and "refused" not in stderr, stderr[-2000:]  # never lost it

        viewer = socketio_client(server.url)
        try:
            answer = viewer.call("run:watch", {"run": key}, timeout=30)
            assert answer["ok"], answer
            state = answer["state"]
            assert state["status"] == "done" and state["step"] == 240 and answer["control"] is False
            assert state["watched"]["name"] == "my own question" and state["watched"]["shows_network"]
            losses = [point["loss"] for point in state["history"]]
            assert len(losses) >= 3 and losses[-1] < losses[0]  # the curves, on the page

            model = make_model("question", tmp_path / "question.pt")
            pixels = torch.rand(784, generator=torch.Generator().manual_seed(3)).tolist()
            prediction = viewer.call("predict", {"pixels": pixels}, timeout=30)
            assert prediction["ok"], prediction
            with torch.no_grad():
                theirs = model(torch.tensor(prediction["input"], dtype=torch.float32).reshape(1, 784))
            np.testing.assert_allclose(prediction["probabilities"], theirs[0].numpy(), atol=1e-3)
            assert prediction["step"] == 240

            runs = viewer.call("runs:list", timeout=30)
            assert any(run["name"] == "my own question" and run["status"] == "done" for run in runs["runs"]), runs
        finally:
            viewer.disconnect()
