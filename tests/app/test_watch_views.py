"""The pictures and charts of any watched network (issue 20, item 3), in process: a page on a
watched run asks for each Linear layer's weights picture (watch:weights) whatever the network
(a chain the page follows or not, 784, 3,072 or 100 inputs, the image shape the user gave), and
every named number the script sends comes to its curve points and metrics, bounded. Bad requests
are refused in words and change nothing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.app.test_watch_frames import call, engine_of, page, script  # noqa: F401 (fixtures)
from tests.support.helpers import in_peoples_words


def layer(path, n_in, n_out, **extra):
    return {"path": path, "in_features": n_in, "out_features": n_out, "bias": True, **extra}


# A network the page cannot follow (a skip connection), its first layer 32x32 colour images,
# then a 100-input layer the user says is a 10x10 grey image, then rows.
UNFOLLOWED = {"name": "colour skip", "layers": [layer("inp", 3072, 100), layer("mid", 100, 100, image_shape=[1, 10, 10]),
                                               layer("out", 100, 10)],
              "tree": [], "chain": None, "unfollowed": "forward adds mid's output to its input (add)"}


def weights(seed=3):
    torch.manual_seed(seed)
    model = nn.ModuleList([nn.Linear(3072, 100), nn.Linear(100, 100), nn.Linear(100, 10)])
    return model, b"".join(p.detach().numpy().astype("<f4").tobytes() for p in model.parameters())




def open_run(script, spec):
    answer = call(script, "watch:open", spec)
    assert answer["ok"], answer
    return answer


def test_every_linear_layer_of_a_network_the_page_cannot_follow_has_its_weights_picture(app, script, page):
    opened = open_run(script, UNFOLLOWED)
    assert opened["shows_network"] is False and opened["why_not"] == UNFOLLOWED["unfollowed"]
    key = opened["run"]
    assert call(page, "run:watch", {"run": key})["ok"]
    early = call(page, "watch:weights", {"layer": 0})
    assert not early["ok"] and "first snapshot" in early["error"] and in_peoples_words(early["error"])

    model, data = weights()
    snapshot = {"run": key, "step": 7, "dtype": "float32", "final": False, "data": data, "layers": [{}, {}, {}]}
    assert call(script, "watch:snapshot", snapshot)["ok"]

    colour = call(page, "watch:weights", {"layer": 0})["picture"]
    assert colour["path"] == "inp" and colour["step"] == 7 and colour["image"] == [3, 32, 32]
    weight = model[0].weight.detach().numpy()
    limit = np.abs(weight).max()
    assert colour["limit"] == pytest.approx(limit) and colour["neurons"] == 100
    codes = np.frombuffer(colour["codes"], dtype=np.uint8).reshape(100, 3072)
    np.testing.assert_array_equal(codes, np.rint(128 + 127 * weight / limit).astype(np.uint8))
    assert sum(colour["histogram"]["counts"]) == 3072 * 100
    assert colour["bias"] == pytest.approx(model[0].bias.tolist())

    # Its distribution over training: the quantiles of its weights at each snapshot.
    assert colour["quantiles"] == [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]
    assert [point["step"] for point in colour["spread"]] == [7]
    np.testing.assert_allclose(colour["spread"][0]["q"], np.quantile(weight, colour["quantiles"]), rtol=1e-6)
    later = {**snapshot, "step": 9, "data": weights(seed=4)[1]}
    assert call(script, "watch:snapshot", later)["ok"]
    again = call(page, "watch:weights", {"layer": 2})["picture"]
    assert [point["step"] for point in again["spread"]] == [7, 9] and again["step"] == 9
    np.testing.assert_allclose(again["spread"][1]["q"][-1], weights(seed=4)[0][2].weight.max().item(), rtol=1e-6)
    model, data = weights(seed=4)

    said = call(page, "watch:weights", {"layer": 1})["picture"]
    assert said["image"] == [1, 10, 10]  # the user's image_shape
    rows = call(page, "watch:weights", {"layer": 2})["picture"]
    assert rows["image"] is None and rows["in_features"] == 100 and len(rows["codes"]) == 10 * 100

    # What a page may not ask: refused in words.
    for bad, words in (({"layer": 3}, "from 0 to 2"), ({"layer": -1}, "layer"), ({"layer": "0"}, "layer"), (None, "layer")):
        refused = call(page, "watch:weights", bad)
        assert not refused["ok"] and words in refused["error"] and in_peoples_words(refused["error"]), (bad, refused)


def test_only_a_watched_run_has_pictures_of_each_linear_layer(app, page):
    refused = call(page, "watch:weights", {"layer": 0})
    assert not refused["ok"] and "watched run" in refused["error"]


@pytest.mark.parametrize("image_shape, words", [
    ([2, 10, 10], "2 channels"),
    ([1, 20, 20], "400 values, but the layer takes 100 inputs"),
    ([1, 0, 100], "height and width"),
    ([10, 10], "at least 3 items"),
    ("10x10", "list"),
])
def test_an_image_shape_that_does_not_fit_its_layer_is_refused_in_words(app, script, image_shape, words):
    before = len(engine_of_runs(app))
    spec = {**UNFOLLOWED, "layers": [layer("inp", 3072, 100), layer("mid", 100, 100, image_shape=image_shape),
                                     layer("out", 100, 10)]}
    refused = call(script, "watch:open", spec)
    assert not refused["ok"] and words in refused["error"] and in_peoples_words(refused["error"]), refused
    assert len(engine_of_runs(app)) == before


def engine_of_runs(app):
    return app.extensions["playground"].request("runs:list", {})["runs"]


def test_every_named_number_comes_to_the_curve_and_the_page_bounded(app, script, page):
    spec = {"name": "numbers", "layers": [layer("0", 784, 4), layer("1", 4, 10)], "chain": {"activations": ["relu", None]}}
    key = open_run(script, spec)["run"]
    assert call(page, "run:watch", {"run": key})["ok"]
    page.get_received()
    numbers = {"accuracy": [0.5, 0.7], "lr": [0.1, 0.2], "step": [9.0, None], "progress": [1.0, 3.0]}
    assert call(script, "watch:steps", {"run": key, "steps": [1, 2], "loss": [1.0, 2.0], "numbers": numbers})["ok"]
    run = engine_of(app, key).part(key).run
    point = run.history[-1]
    # The script's own "step" and "progress" are its numbers: the point's step and the page's progress stay.
    assert point["step"] == 2 and point["accuracy"] == pytest.approx(0.6)
    assert point["numbers"] == pytest.approx({"lr": 0.15, "step": 9.0, "progress": 2.0})
    metrics = [m["args"][0] for m in page.get_received() if m["name"] == "metrics"]
    assert metrics and metrics[-1]["numbers"]["lr"] == pytest.approx(0.15) and metrics[-1]["progress"] is None
    # At most 16 names a run: later new names are left out, and counted.
    for start in range(0, 40, 10):
        more = {f"n{i}": [1.0, 1.0] for i in range(start, start + 10)}
        assert call(script, "watch:steps", {"run": key, "steps": [3 + start, 4 + start], "loss": [1.0, 1.0],
                                           "numbers": more})["ok"]
    watched = run.state()["watched"]
    assert len(watched["numbers"]) == 16 and watched["numbers"][:4] == ["accuracy", "lr", "step", "progress"]
    assert watched["numbers_left_out"] == 40 - 12
    assert set(run.history[-1]["numbers"]) <= set(watched["numbers"])
