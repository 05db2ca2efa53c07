"""The exports in the browser: each download button gives its file (Playwright's download events),
each says in one line what it is and how to use it, and the page says they were checked; the
buttons follow the run the page is on; the Keras code beside the PyTorch class shows the live
weights and follows the run while it is in view."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from playwright.sync_api import expect

from tests.support.browser import TIMEOUT_MS, PlaygroundPage
from tests.support.helpers import socketio_client, wait_for

pytestmark = pytest.mark.browser

BUTTONS = {  # data-testid -> what its file is called, and the line beside it says
    "download-checkpoint": (".pt", 'torch.load("model.pt", weights_only=True)'),
    "export-python": ("nn_linear_playground.py", "python nn_linear_playground.py train DIR"),
    "export-onnx": (".onnx", 'onnxruntime.InferenceSession(path).run(None, {"x": x})'),
    "export-keras": (".keras", "keras.saving.load_model(path)"),
}


def download(page, testid: str):
    with page.page.expect_download(timeout=TIMEOUT_MS) as started:
        page.by_id(testid).click()
    done = started.value
    assert done.failure() is None, done.failure()
    return done.suggested_filename, Path(done.path()).read_bytes()


def test_every_export_downloads_from_its_button_with_a_line_saying_how_to_use_it(page, live_server):
    teacher = socketio_client(live_server.url)
    try:
        assert teacher.call("train:step", {"batches": 4}, timeout=10)["ok"]
        replica = live_server.engine.part().replica.reader  # what the downloads are made from
        wait_for(lambda: live_server.session.trainer.global_step == 4 and replica.latest().step == 4, what="4 steps")
    finally:
        teacher.disconnect()
    playground = PlaygroundPage(page).open(live_server)
    playground.by_id("exports").scroll_into_view_if_needed()
    for testid, (name, usage) in BUTTONS.items():
        expect(playground.by_id(testid).locator("xpath=..")).to_contain_text(usage)
    expect(playground.by_id("exports-checked")).to_contain_text("load each file in the real framework")
    playground.screenshot("exports/keep-the-weights.png", locator=page.locator("#checkpoint-card"))

    files = {}
    for testid, (name, _) in BUTTONS.items():
        filename, data = download(playground, testid)
        assert filename.endswith(name), filename
        files[testid] = (filename, data)
    assert files["download-checkpoint"][0] == "nn-linear-784-256-10-sigmoid-step4.pt"
    assert files["export-onnx"][0] == "nn-linear-784-256-10-sigmoid-step4.onnx"
    assert files["export-keras"][0] == "nn-linear-784-256-10-sigmoid-step4.keras"

    weights = torch.load(io.BytesIO(files["download-checkpoint"][1]), weights_only=True)
    assert torch.equal(weights["hidden.weight"], live_server.session.trainer.model.hidden.weight.detach())
    assert "self.hidden = nn.Linear(784, 256)" in files["export-python"][1].decode()
    model = onnx.load_from_string(files["export-onnx"][1])
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(1).random((8, 784), dtype=np.float32)
    logits = onnxruntime.InferenceSession(files["export-onnx"][1], providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(logits, live_server.session.trainer.model.logits(torch.from_numpy(x)).numpy(), atol=1e-5)
    assert sorted(zipfile.ZipFile(io.BytesIO(files["export-keras"][1])).namelist()) == [
        "config.json", "metadata.json", "model.weights.h5"]


def test_the_buttons_follow_the_pages_run_and_the_keras_code_its_live_weights(page, live_server):
    playground = PlaygroundPage(page).open(live_server)
    keras = playground.by_id("keras-code")
    keras.scroll_into_view_if_needed()
    expect(keras).to_have_attribute("data-step", "0", timeout=TIMEOUT_MS)
    expect(keras).to_contain_text("model.get_layer(name).set_weights([W.T, b])")
    expect(keras).to_contain_text("At step 0: hidden.weight[0, :3] = [")
    expect(playground.by_id("keras-note")).to_contain_text("x @ kernel + bias is x WT + b")
    playground.screenshot("exports/keras-side-by-side.png", locator=playground.by_id("keras-side-by-side"))

    # Train my own copy: the downloads are that run's, and the Keras code follows it as it trains.
    key = playground.train_my_own_copy()
    for testid, path in [("export-onnx", "/api/export.onnx"), ("export-keras", "/api/export.keras")]:
        expect(playground.by_id(testid)).to_have_attribute("href", f"{path}?run={key}")
    keras.scroll_into_view_if_needed()
    page.wait_for_function("() => Number(document.querySelector('[data-testid=keras-code]').dataset.step) > 0",
                           timeout=TIMEOUT_MS)
    step = int(keras.get_attribute("data-step"))
    assert f"At step {step:,}: hidden.weight[0, :3]" in keras.text_content()

    playground.by_id("exports").scroll_into_view_if_needed()
    filename, data = download(playground, "export-onnx")
    now = live_server.playground.request("state", {"run": key})["state"]["step"]  # the private run's engine
    assert filename.startswith("nn-linear-784-256-10-sigmoid-step") and filename.endswith(".onnx")
    assert 0 < int(filename.rsplit("step", 1)[1].removesuffix(".onnx")) <= now
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
