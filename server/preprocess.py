"""Turn user input into the 784-value vector the network expects, the way MNIST was made.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, with
anti-aliasing) and then placed in a 28x28 field so that the centre of mass of the ink sits
at the centre, (14, 14) in (row, column) pixel indices. `center_like_mnist` does the same to
any grayscale drawing; `preprocess_canvas` validates raw canvas bytes and runs it;
`preprocess_pixels` validates input that is already in MNIST format and leaves it alone.

Values are 0..1 with 1 = ink, 0 = background.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from .errors import UserError
from .refusals import shown

MAX_SIDE = 1024  # largest accepted canvas width/height
SIDE = 28  # MNIST image side
BOX = 20  # the digit is fitted into a BOX x BOX square
CENTER = 14.0  # where the centre of mass goes (row and column index)
N_PIXELS = SIDE * SIDE


class PreprocessError(UserError):
    """Input that cannot be turned into a digit image; the message is meant for people."""


def _check_side(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PreprocessError(f"{name} must be a whole number from 1 to {MAX_SIDE} (got {shown(value)})")
    value = int(value)
    if not 1 <= value <= MAX_SIDE:
        raise PreprocessError(f"{name} must be from 1 to {MAX_SIDE}, got {value}")
    return value


def preprocess_canvas(width: int, height: int, data: bytes) -> np.ndarray:
    """Canvas bytes (one grayscale byte per pixel, row-major, 255 = ink) -> float32 (784,).

    A canvas with no ink gives all zeros.
    """
    width = _check_side("image.width", width)
    height = _check_side("image.height", height)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PreprocessError(f"image.data must be the canvas's bytes, one per pixel (got {shown(data)})")
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    expected = width * height
    if raw.size != expected:
        raise PreprocessError(
            f"image.data has {raw.size} bytes but width*height is {expected} "
            f"({width}x{height}, one byte per pixel)"
        )
    canvas = raw.reshape(height, width)
    # Crop to the ink while still bytes: converting the whole (mostly empty) canvas to floats
    # costs more than the rest of the work. center_like_mnist crops the same way.
    rows = np.flatnonzero(canvas.any(axis=1))
    if rows.size == 0:
        return np.zeros(N_PIXELS, dtype=np.float32)
    cols = np.flatnonzero(canvas.any(axis=0))
    ink = canvas[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    return center_like_mnist(ink.astype(np.float32) / 255.0).reshape(-1)


def preprocess_pixels(pixels: Any) -> np.ndarray:
    """784 numbers in 0..1 (a 28x28 image, row-major) -> float32 (784,), unchanged otherwise."""
    if isinstance(pixels, (str, bytes, bytearray)) or not hasattr(pixels, "__len__"):
        raise PreprocessError(f"pixels must be a list of {N_PIXELS} numbers from 0 to 1 (got {shown(pixels)})")
    if isinstance(pixels, np.ndarray):
        if pixels.ndim != 1:
            raise PreprocessError(
                f"pixels must be a flat list of {N_PIXELS} values, got an array of shape {pixels.shape}"
            )
        if pixels.dtype == np.bool_ or not np.issubdtype(pixels.dtype, np.number):
            raise PreprocessError(f"pixels must be numbers, got an array of {pixels.dtype}")
        pixels = pixels.tolist()
    if len(pixels) != N_PIXELS:
        raise PreprocessError(f"pixels must have {N_PIXELS} values ({SIDE}x{SIDE}), got {len(pixels)}")
    out = np.empty(N_PIXELS, dtype=np.float32)
    for i, v in enumerate(pixels):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, Real):
            raise PreprocessError(f"pixels[{i}] must be a number from 0 to 1 (got {shown(v)})")
        f = float(v)
        if math.isnan(f):
            raise PreprocessError(f"pixels[{i}] is NaN: give a number from 0 (background) to 1 (ink)")
        if math.isinf(f):
            raise PreprocessError(f"pixels[{i}] is infinite: give a number from 0 (background) to 1 (ink)")
        if not 0.0 <= f <= 1.0:
            raise PreprocessError(f"pixels[{i}] is {v!r}, outside 0..1: give a number from 0 (background) to 1 (ink)")
        out[i] = f
    return out


def center_like_mnist(image: np.ndarray) -> np.ndarray:
    """Float 2-D array (0..1, 1 = ink) of any size -> (28, 28) float32, MNIST-style.

    Crop to the ink's bounding box, resize (anti-aliased, aspect kept) so the longer side is
    20 px, then place it in a 28x28 frame with the ink's centre of mass at (14, 14), using a
    sub-pixel linear shift. No ink gives all zeros.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise PreprocessError(f"image must be a non-empty 2-D array, got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise PreprocessError("image has NaN or infinite values")
    img = np.clip(img, 0.0, 1.0)

    rows = np.flatnonzero(img.any(axis=1))
    cols = np.flatnonzero(img.any(axis=0))
    if rows.size == 0:
        return np.zeros((SIDE, SIDE), dtype=np.float32)
    crop = img[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]

    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w = min(BOX, max(1, int(round(w * scale))))
    new_h = min(BOX, max(1, int(round(h * scale))))
    pil = Image.fromarray(crop.astype(np.float32))  # float32 -> mode "F"
    patch = np.asarray(pil.resize((new_w, new_h), Image.Resampling.LANCZOS), dtype=np.float64)
    patch = np.clip(patch, 0.0, 1.0)  # Lanczos can ring slightly outside 0..1

    if patch.sum() <= 0:  # ink too faint to survive the resize
        return np.zeros((SIDE, SIDE), dtype=np.float32)
    cy, cx = ndimage.center_of_mass(patch)
    # Output pixel (r, c) samples the patch at (r + cy - 14, c + cx - 14), so patch point
    # (cy, cx) lands on (14, 14). Linear interpolation keeps the centre of mass exact.
    out = ndimage.affine_transform(
        patch,
        np.eye(2),
        offset=(cy - CENTER, cx - CENTER),
        output_shape=(SIDE, SIDE),
        order=1,
        mode="grid-constant",  # interpolate against zeros past the edges
        cval=0.0,
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# ---- the drawing as another model's input image ----------------------------------------------------

def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of 1-D linear interpolation with pixel centres aligned
    (torch's F.interpolate(..., mode="bilinear", align_corners=False)): each row sums to 1."""
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    source = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    weight_high = source - low
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, low), 1.0 - weight_high)
    np.add.at(matrix, (rows, high), weight_high)
    return matrix


def resampled_drawing(pixels: np.ndarray, image: tuple[int, int, int]) -> np.ndarray:
    """The 28×28 drawing (784 values, 1 = ink: white strokes on black, as the canvas draws) as
    an input image of shape (channels, height, width), flattened channel-first as torch flattens
    (C, H, W): resampled bilinearly to height × width, the same grey drawing in each channel
    (1 or 3). float32 in 0..1."""
    channels, height, width = (int(n) for n in image)
    if channels not in (1, 3) or not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise PreprocessError(f"an input image is 1 or 3 channels of 1 to {MAX_SIDE} × 1 to {MAX_SIDE} pixels, "
                              f"got {channels}×{height}×{width}")
    drawing = np.asarray(pixels, dtype=np.float64).reshape(SIDE, SIDE)
    grey = _bilinear_matrix(SIDE, height) @ drawing @ _bilinear_matrix(SIDE, width).T
    grey = np.clip(grey, 0.0, 1.0).astype(np.float32)
    return np.broadcast_to(grey, (channels, height, width)).reshape(-1).copy()


def model_input(pixels: np.ndarray, image) -> np.ndarray:
    """What a network is given for the drawing's 784 pixels: the pixels themselves for a 28×28
    grey input (the playground's own networks: `image` None or (1, 28, 28)), else the drawing
    resampled to the network's input image (`resampled_drawing`). Every prediction for a run
    goes through here, from the web tier's replica and from the engine alike."""
    if image is None or tuple(image) == (1, SIDE, SIDE):
        return pixels
    return resampled_drawing(pixels, image)
