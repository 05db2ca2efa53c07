"""watch(..., image_shape=...) read in the user's own process (client/linear_playground/structure.py):
how a Linear layer's inputs read as an image, refused in words before anything starts when it
does not fit (the server checks the same again: tests/app/test_watch_views.py)."""
from __future__ import annotations

import sys

import pytest
from torch import nn

from tests.support.helpers import REPO

sys.path.insert(0, str(REPO / "client"))
from linear_playground.structure import image_shapes, linear_layers  # noqa: E402


def linears():
    return linear_layers(nn.Sequential(nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)))


def test_one_shape_is_the_first_layers_and_a_dict_names_layers():
    assert image_shapes(None, linears()) == {}
    assert image_shapes((3, 10, 10), linears()) == {"0": [3, 10, 10]}
    assert image_shapes([1, 300], linears()) == {"0": [1, 1, 300]}
    assert image_shapes({"2": (10, 10)}, linears()) == {"2": [1, 10, 10]}


@pytest.mark.parametrize("option, words", [
    ((2, 10, 15), "2 channels; the page draws 1 (grey) or 3 (colour"),
    ((10, 10), "1×10×10 is 100 values, but the layer takes 300 inputs"),
    ((3, 10), "1×3×10 is 30 values"),
    ((1, 0, 300), "height and width from 1 to 1024"),
    ((3, 10.0, 10), "whole numbers"),
    ("32x32", "give (channels, height, width) or (height, width)"),
    ((1, 2, 3, 50), "give (channels, height, width)"),
    ({"hidden": (10, 10)}, "'hidden', which is not one of the model's Linear layers ('0', '2')"),
])
def test_a_shape_that_does_not_fit_is_refused_in_words(option, words):
    with pytest.raises(ValueError) as refused:
        image_shapes(option, linears())
    assert words in str(refused.value)
    assert "image_shape" in str(refused.value)


def test_a_named_number_that_is_no_name_is_left_out_of_what_is_sent_said_once(caplog):
    import importlib
    client = importlib.import_module("linear_playground.watch")  # the module (the package names its function watch)

    with caplog.at_level("WARNING", logger="linear_playground"):
        assert client._number_name("grad_norm") and client._number_name("lr")
        assert not client._number_name("my lr") and not client._number_name("my lr")
        assert not client._number_name("<b>x</b>")
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 2 and "'my lr' is not sent" in told[0] and "letters, digits and _" in told[0]
