"""Draw into your own model when its input is another image (issue 20 item 4): a watched chain
whose first Linear layer reads 32×32 grey (1,024 inputs), 32×32 colour (3,072, channel-first) or
the user's image_shape is given the page's 28×28 drawing resampled to that image (the grey
drawing in each channel), and the page's answer is the user's model's for that input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from server import create_app
from tests.app.test_watch_frames import call, page, script, script_client  # noqa: F401 (fixtures)


def chain(inputs: int, activation=nn.ReLU):
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(inputs, 24), activation(), nn.Linear(24, 10))


def spec_of(model, activation: str, image_shape=None) -> dict:
    first, last = model[0], model[2]
    return {"name": "own image", "tree": [], "unfollowed": None, "controllable": False,
            "layers": [{"path": "0", "in_features": first.in_features, "out_features": 24, "bias": True,
                        **({"image_shape": list(image_shape)} if image_shape else {})},
                       {"path": "2", "in_features": 24, "out_features": last.out_features, "bias": True}],
            "chain": {"activations": [activation, None]}}


def snapshot_of(key, model, step, final=False) -> dict:
    data = b"".join(p.detach().numpy().astype("<f4").tobytes() for p in model.parameters())
    return {"run": key, "step": step, "dtype": "float32", "final": final, "data": data, "layers": [{}, {}]}




def a_drawing() -> list[float]:
    image = np.zeros((28, 28))
    image[5:23, 12:16] = 1.0  # a "1"
    return image.reshape(-1).tolist()


@pytest.mark.parametrize("inputs, activation, image_shape, image", [
    (1024, "relu", None, (1, 32, 32)),
    (3072, "tanh", (3, 32, 32), (3, 32, 32)),
    (256, "sigmoid", (1, 16, 16), (1, 16, 16)),  # the user says its 256 inputs are a 16×16 image
])
def test_the_canvas_predicts_with_a_chain_that_reads_another_image(app, script, page, inputs, activation,
                                                                     image_shape, image):
    model = chain(inputs, {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[activation])
    opened = call(script, "watch:open", spec_of(model, activation, image_shape))
    assert opened["ok"], opened
    assert opened["predicts"] is True and opened["shows_network"] is False  # the client's run.predicts
    key = opened["run"]
    assert call(page, "run:watch", {"run": key})["ok"]
    watched = call(page, "run:watch", {"run": key})["state"]["watched"]
    assert watched["predicts"] is True and watched["input_image"] == list(image)
    not_yet = call(page, "predict", {"pixels": a_drawing()})
    assert not not_yet["ok"] and "not ready" in not_yet["error"]  # no weights before the first snapshot

    for step, final in ((3, False), (9, True)):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.05)  # the script trained on
        assert call(script, "watch:snapshot", snapshot_of(key, model, step, final))["ok"]
        answer = call(page, "predict", {"pixels": a_drawing()})
        assert answer["ok"], answer
        channels, height, width = image
        # The user's model on the drawing resampled as torch resamples (bilinear, pixel centres aligned).
        drawing = torch.tensor(a_drawing(), dtype=torch.float32).reshape(1, 1, 28, 28)
        seen = F.interpolate(drawing, size=(height, width), mode="bilinear", align_corners=False)
        seen = seen.expand(1, channels, height, width).reshape(1, -1)
        with torch.no_grad():
            theirs = F.softmax(model(seen), dim=1)[0].numpy()
        np.testing.assert_allclose(answer["probabilities"], theirs, atol=1e-5)
        assert answer["step"] == step and answer["prediction"] == int(theirs.argmax())
        assert answer["model_input"]["shape"] == list(image)
        np.testing.assert_allclose(answer["model_input"]["values"], seen[0].numpy(), atol=1e-5)


def test_a_chain_of_784_inputs_answers_as_before_without_a_resampled_input(app, script, page):
    model = chain(784)
    key = call(script, "watch:open", spec_of(model, "relu"))["run"]
    assert call(script, "watch:snapshot", snapshot_of(key, model, 2))["ok"]
    call(page, "run:watch", {"run": key})
    answer = call(page, "predict", {"pixels": a_drawing()})
    assert answer["ok"] and "model_input" not in answer
    with torch.no_grad():
        theirs = F.softmax(model(torch.tensor([a_drawing()], dtype=torch.float32)), dim=1)[0].numpy()
    np.testing.assert_allclose(answer["probabilities"], theirs, atol=1e-5)


def test_an_image_the_chain_cannot_be_predicted_with_says_why(app, script, page):
    wrong = call(script, "watch:open", spec_of(chain(1024), "relu", (3, 32, 32)))
    assert not wrong["ok"] and "3×32×32 is 3,072 values, but the layer takes 1,024 inputs" in wrong["error"]
    no_image = call(script, "watch:open", spec_of(chain(1000), "relu"))
    assert no_image["ok"] and no_image["shows_network"] is False and no_image["predicts"] is False
    call(page, "run:watch", {"run": no_image["run"]})
    watched = call(page, "run:watch", {"run": no_image["run"]})["state"]["watched"]
    assert watched["predicts"] is False and watched["input_image"] is None
    refused = call(page, "predict", {"pixels": a_drawing()})
    assert not refused["ok"] and "takes 1000 inputs, not 784" in refused["error"], refused


def test_a_web_tier_that_asks_the_engine_gives_the_same_answer(small_dataset, tmp_path):
    """--predict-via-engine (or an engine on another machine): the engine's `predict` resamples
    the drawing the same way, and says the image so the page shows what its network saw."""
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "predict_via_engine": True},
                     dataset=small_dataset)
    script = script_client(app)
    page = app.extensions["playground"].socketio.test_client(app, flask_test_client=app.test_client())
    try:
        model = chain(3072)
        key = call(script, "watch:open", spec_of(model, "relu"))["run"]
        assert call(script, "watch:snapshot", snapshot_of(key, model, 4))["ok"]
        assert app.extensions["playground"].replicas.get(key) is None  # not read here: asked of the engine
        call(page, "run:watch", {"run": key})
        answer = call(page, "predict", {"pixels": a_drawing()})
        assert answer["ok"], answer
        drawing = torch.tensor(a_drawing(), dtype=torch.float32).reshape(1, 1, 28, 28)
        seen = F.interpolate(drawing, size=(32, 32), mode="bilinear", align_corners=False).expand(1, 3, 32, 32)
        with torch.no_grad():
            theirs = F.softmax(model(seen.reshape(1, -1)), dim=1)[0].numpy()
        np.testing.assert_allclose(answer["probabilities"], theirs, atol=1e-5)
        assert answer["model_input"]["shape"] == [3, 32, 32]
        np.testing.assert_allclose(answer["model_input"]["values"], seen.reshape(-1).numpy(), atol=1e-5)
    finally:
        page.disconnect()
        script.disconnect()
        app.extensions["playground"].shutdown()
