"""The Linear sandbox: the question's nn.Linear(2, 2) example computed by a real nn.Linear,
reproducing its printed numbers; POST /api/linear refuses bad shapes with PyTorch's own words and
bad numbers with clear ones; Randomize initialises W and b as nn.Linear does."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from server.engine.explain import SANDBOX_DEFAULTS, linear_sandbox, random_linear

QUESTION_W = [[-0.4500, 0.5856], [-0.1807, -0.4963]]
QUESTION_PRINTED_Y = [[-0.8133, -0.2959], [0.8079, -1.1077], [0.2223, -0.6114]]  # the question's printed y
QUESTION_B = [0.2223, -0.6114]


def rounded(matrix, digits=4):
    return [[round(v, digits) for v in row] for row in matrix]


def test_the_defaults_are_the_questions_weights_as_pytorch_prints_them():
    assert rounded(SANDBOX_DEFAULTS["weight"]) == QUESTION_W
    assert [round(v, 4) for v in SANDBOX_DEFAULTS["bias"]] == QUESTION_B
    assert SANDBOX_DEFAULTS["x"] == [[1.0, -1.0], [0.0, 1.0], [0.0, 0.0]]


def test_the_sandbox_reproduces_the_questions_printed_y_to_4_decimals():
    result = linear_sandbox(**SANDBOX_DEFAULTS)

    assert rounded(result["y"]) == QUESTION_PRINTED_Y == [[-0.8133, -0.2959], [0.8079, -1.1077], [0.2223, -0.6114]]
    assert result["printed"] == ("tensor([[-0.8133, -0.2959],\n        [ 0.8079, -1.1077],\n"
                                 "        [ 0.2223, -0.6114]], grad_fn=<AddmmBackward0>)")
    assert result["shapes"] == {"x": [3, 2], "weight": [2, 2], "bias": [2], "y": [3, 2]}


def test_the_sandbox_is_x_times_W_transposed_plus_b_for_any_size():
    generator = torch.Generator().manual_seed(0)
    for rows, n_in, n_out in [(1, 1, 1), (4, 3, 5), (8, 8, 8)]:
        x, w, b = (torch.randn(rows, n_in, generator=generator), torch.randn(n_out, n_in, generator=generator),
                   torch.randn(n_out, generator=generator))
        result = linear_sandbox(x.tolist(), w.tolist(), b.tolist())
        torch.testing.assert_close(torch.tensor(result["y"]), x @ w.T + b)
        assert (result["in_features"], result["out_features"]) == (n_in, n_out)


def test_post_api_linear_computes_the_example(client):
    response = client.post("/api/linear", json=SANDBOX_DEFAULTS)

    assert response.status_code == 200
    assert rounded(response.get_json()["y"]) == QUESTION_PRINTED_Y


def test_get_api_linear_gives_the_defaults_and_limits(client):
    body = client.get("/api/linear").get_json()

    assert body["defaults"] == SANDBOX_DEFAULTS
    assert body["max_size"] == 8
    assert rounded(body["y"]) == QUESTION_PRINTED_Y


@pytest.mark.parametrize("body, words", [
    ({"x": [[1.0, 2.0, 3.0]], "weight": [[1.0, 2.0], [3.0, 4.0]], "bias": [0.0, 0.0]},
     ["x has 3 columns but weight has 2 (in_features)", "PyTorch says: mat1 and mat2 shapes cannot be multiplied (1x3 and 2x2)"]),
    ({"x": [[1.0, 2.0]], "weight": [[1.0, 2.0], [3.0, 4.0]], "bias": [0.0, 0.0, 0.0]},
     ["bias has 3 numbers but weight has 2 rows", "PyTorch says: Error(s) in loading state_dict for Linear: size mismatch for bias"]),
    ({"x": [[1.0, 2.0], [1.0]], "weight": [[1.0, 2.0]], "bias": [0.0]},
     ["x: every row must have the same length", "expected sequence of length 2"]),
    ({"x": [[1.0, 2.0]], "weight": [[1.0, 2.0], [3.0]], "bias": [0.0, 0.0]},
     ["weight: every row must have the same length"]),
])
def test_bad_shapes_answer_400_with_pytorchs_own_message_in_words(client, body, words):
    response = client.post("/api/linear", json=body)

    assert response.status_code == 400
    for phrase in words:
        assert phrase in response.get_json()["error"]


GOOD = {"x": [[1.0, 2.0]], "weight": [[1.0, 2.0]], "bias": [0.0]}


@pytest.mark.parametrize("change, words", [
    ({"x": [[1.0, "2"]]}, "x[0][1]: give a number, e.g. 0.5 (got \"2\")"),
    ({"weight": [[True, 2.0]]}, "weight[0][0]: give a number"),
    ({"bias": [None]}, "bias[0]: give a number"),
    ({"x": [[1.0, 2e7]]}, "x[0][1]: give a number of at most 1,000,000"),
    ({"bias": [-2e7]}, "bias[0]: give a number of at least -1,000,000"),
    ({"x": [[1.0, 2.0]] * 9}, "x: give at most 8 rows (got 9)"),
    ({"weight": [[1.0] * 9]}, "weight[0]: give at most 8 numbers (got 9)"),
    ({"x": []}, "x: give at least 1 row (got 0)"),
    ({"x": [[]]}, "x[0]: give at least 1 number (got 0)"),
    ({"x": [1.0, 2.0]}, "x[0]: give a list"),
    ({"colour": "red"}, "colour: not something this request takes"),
])
def test_non_numbers_and_too_large_inputs_answer_400_clearly(client, change, words):
    response = client.post("/api/linear", json={**GOOD, **change})

    assert response.status_code == 400
    assert words in response.get_json()["error"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_nan_and_infinity_answer_400(client, literal):
    body = '{"x": [[%s, 1.0]], "weight": [[1.0, 2.0]], "bias": [0.0]}' % literal

    response = client.post("/api/linear", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["error"].startswith("x[0][0]: give a finite number (got ")


@pytest.mark.parametrize("data, content_type", [("x=1", "application/x-www-form-urlencoded"),
                                                 ("[1, 2]", "application/json"), ("{not json", "application/json")])
def test_a_body_that_is_not_a_json_object_answers_400(client, data, content_type):
    response = client.post("/api/linear", data=data, content_type=content_type)

    assert response.status_code == 400
    assert "JSON object" in response.get_json()["error"]


@pytest.mark.parametrize("seed, n_in, n_out", [(0, 2, 2), (5, 3, 4), (1234, 8, 1)])
def test_randomize_draws_what_nn_linear_draws(client, seed, n_in, n_out):
    torch.manual_seed(seed)
    reference = nn.Linear(n_in, n_out)

    body = client.post("/api/linear/random", json={"in_features": n_in, "out_features": n_out, "seed": seed}).get_json()

    assert torch.equal(torch.tensor(body["weight"]), reference.weight.detach())
    assert torch.equal(torch.tensor(body["bias"]), reference.bias.detach())
    assert body["bound"] == pytest.approx(1 / math.sqrt(n_in))


def test_randomize_stays_within_one_over_sqrt_in_features_and_leaves_the_global_stream_alone():
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)

    draws = [random_linear(8, 8) for _ in range(20)]

    assert torch.equal(torch.rand(3), expected)  # a seeded model build elsewhere is unaffected
    values = torch.tensor([[v for row in d["weight"] for v in row] + d["bias"] for d in draws])
    bound = 1 / math.sqrt(8)
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.9 * bound
    assert len({d["seed"] for d in draws}) > 1


@pytest.mark.parametrize("body, words", [
    ({"in_features": 9, "out_features": 2}, "in_features: give a number of at most 8"),
    ({"in_features": 0, "out_features": 2}, "in_features: give a number of at least 1"),
    ({"in_features": 2}, "out_features: missing: send it"),
    ({"in_features": 2.5, "out_features": 2}, "in_features: give a whole number"),
])
def test_randomize_refuses_bad_sizes(client, body, words):
    response = client.post("/api/linear/random", json=body)

    assert response.status_code == 400
    assert words in response.get_json()["error"]
