"""Draw into your own model when it reads another image (issue 20 item 4), in Chromium: a user's
script trains a model whose first Linear layer takes 32×32 colour images (it says
image_shape=(3, 32, 32)); on the run's link, drawing on the canvas predicts with that model: the
drawing resampled to 32×32, the same grey drawing in each channel, shown beside the bars."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tests.browser.test_watch_browser import open_run, predict_answers, server  # noqa: F401 (a fixture)
from tests.support.browser import SEVEN, TIMEOUT_MS, by_id, own_page
from tests.support.watch_scripts import finished, key_of, make_model, start_script


def test_drawing_into_a_model_of_32_by_32_colour_images_shows_its_prediction_and_what_it_saw(
        browser, server, installed_client, tmp_path):  # noqa: F811
    steps = 120
    process = start_script("colour_said", server.url, tmp_path, installed_client, steps=steps, pause_s=0.02)
    try:
        key = key_of(process)
        with own_page(browser) as page:
            answers = predict_answers(page)
            playground = open_run(page, server, key)
            lines, _ = finished(process, timeout=240)
            page.wait_for_function(f"() => document.querySelector('{by_id('status')}').textContent === 'done'",
                                   timeout=TIMEOUT_MS)
            # The canvas is not one of the views that cannot follow this network: no "why not" beside it.
            assert not playground.by_id("watched-canvas-why").is_visible()
            assert "resampled to 32×32 in colour" in playground.text("training-objective")

            playground.draw(SEVEN)
            shown = playground.settled_prediction()
            answer = answers[-1]
            assert answer["step"] == steps and answer["model_input"]["shape"] == [3, 32, 32]
            # The user's own model, given what the page says it gave it: the drawing resampled.
            drawing = torch.tensor(answer["input"], dtype=torch.float32).reshape(1, 1, 28, 28)
            seen = F.interpolate(drawing, size=(32, 32), mode="bilinear", align_corners=False)
            seen = seen.expand(1, 3, 32, 32).reshape(1, -1)
            np.testing.assert_allclose(answer["model_input"]["values"], seen[0].numpy(), atol=1e-5)
            with torch.no_grad():
                theirs = F.softmax(make_model("colour_said", tmp_path / "colour_said.pt")(seen), dim=1)[0].numpy()
            np.testing.assert_allclose(playground.probabilities(), theirs, atol=1e-3)
            assert shown == str(int(theirs.argmax()))

            # Beside the bars: the 32×32 input the model saw, ink dark as the 28×28 preview draws it.
            preview = page.evaluate(f"""() => {{ const c = document.querySelector('{by_id("preview")}');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
                return {{ width: c.width, height: c.height, shape: c.dataset.shape, data: Array.from(d.data) }}; }}""")
            assert (preview["width"], preview["height"], preview["shape"]) == (32, 32, "3x32x32")
            rgb = np.array(preview["data"], dtype=float).reshape(32, 32, 4)[..., :3]
            expected = 255 - np.round(255 * seen[0].numpy().reshape(3, 32, 32).transpose(1, 2, 0))
            np.testing.assert_allclose(rgb, expected, atol=1)
            caption = page.text_content("#draw-panel figure.preview figcaption")
            assert caption.startswith("Resampled to 32×32 colour"), caption
            assert playground.serious_axe_violations("#draw-panel") == []
            playground.screenshot("watch/colour-canvas.png", locator=page.locator("#draw-panel"))
            playground.screenshot("watch/colour-canvas-page.png", full_page=True)
    finally:
        if process.poll() is None:
            process.kill()
