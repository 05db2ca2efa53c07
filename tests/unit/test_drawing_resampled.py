"""The canvas predicts with a watched model whose input is another image (issue 20 item 4): the
28×28 drawing resampled bilinearly to the model's height × width, the grey drawing in each of
its channels, as torch would resample it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from server.preprocess import PreprocessError, model_input, resampled_drawing


def a_drawing(seed=0) -> np.ndarray:
    """A 28×28 stroke: a bright bar with soft edges, like a canvas's ink (0..1)."""
    image = np.zeros((28, 28), dtype=np.float32)
    image[6:22, 12:16] = 1.0
    image[6:22, 11] = image[6:22, 16] = 0.5
    noise = np.random.default_rng(seed).random((28, 28)).astype(np.float32) * 0.1
    return np.clip(image + noise, 0, 1).reshape(-1)


@pytest.mark.parametrize("image", [(1, 32, 32), (3, 32, 32), (1, 16, 16), (3, 20, 40), (1, 28, 28)])
def test_the_drawing_is_resampled_bilinearly_to_the_models_image_in_each_channel(image):
    pixels = a_drawing()
    seen = resampled_drawing(pixels, image)
    channels, height, width = image
    assert seen.shape == (channels * height * width,) and seen.dtype == np.float32
    assert seen.min() >= 0.0 and seen.max() <= 1.0
    torchs = F.interpolate(torch.from_numpy(pixels).reshape(1, 1, 28, 28), size=(height, width),
                           mode="bilinear", align_corners=False)[0, 0].numpy()
    for channel in seen.reshape(channels, height, width):  # channel-first, the same grey in each
        np.testing.assert_allclose(channel, torchs, atol=1e-6)


def test_a_plain_image_stays_plain_and_the_ink_stays_where_it_was():
    np.testing.assert_allclose(resampled_drawing(np.full(784, 0.25, np.float32), (1, 32, 32)), 0.25, atol=1e-7)
    bar = np.zeros((28, 28), np.float32)
    bar[:, 14:] = 1.0  # the right half inked
    seen = resampled_drawing(bar.reshape(-1), (1, 32, 32)).reshape(32, 32)
    assert (seen[:, :15] == 0).all() and (seen[:, 17:] == 1).all()


def test_a_28_by_28_grey_input_is_given_the_pixels_themselves():
    pixels = a_drawing()
    assert model_input(pixels, None) is pixels and model_input(pixels, (1, 28, 28)) is pixels
    assert model_input(pixels, (3, 32, 32)).shape == (3072,)


@pytest.mark.parametrize("image", [(2, 32, 32), (1, 0, 32), (3, 32, 5000)])
def test_an_image_the_page_cannot_draw_into_is_refused_in_words(image):
    with pytest.raises(PreprocessError, match="1 or 3 channels"):
        resampled_drawing(a_drawing(), image)
