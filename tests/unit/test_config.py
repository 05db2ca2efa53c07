"""The setup schema: defaults are the question's network; bad values are refused in words that
say which field is wrong and why. The viewing pace is kept beside the setup, not in it."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.experiment import (DEFAULT_PACE, LIVE_FIELDS, ConfigError, TrainConfig, checked_pace,
                               split_pace)


def refusal(changes: dict) -> str:
    """The message people get for `changes` applied to the default setup."""
    with pytest.raises(ConfigError) as info:
        TrainConfig().updated(changes)
    return str(info.value)


def test_defaults_describe_the_questions_network_trained_with_adam():
    config = TrainConfig()
    assert config.hidden_sizes == [256]
    assert config.activation == "sigmoid"
    assert config.optimizer == "adam"
    assert config.lr == 0.001
    assert config.batch_size == 64
    assert "steps_per_second" not in config.model_dump()  # the pace is how fast people watch
    assert DEFAULT_PACE == 50.0


def test_updated_returns_a_new_validated_config_and_leaves_the_old_one():
    config = TrainConfig()
    changed = config.updated({"lr": 0.01, "batch_size": 128})
    assert (changed.lr, changed.batch_size) == (0.01, 128)
    assert (config.lr, config.batch_size) == (0.001, 64)
    assert config.changed_fields(changed) == {"lr", "batch_size"}


def test_the_pace_sent_inside_the_setup_is_taken_out_of_it_and_null_is_full_speed():
    assert split_pace({"lr": 0.01, "steps_per_second": None}) == ({"lr": 0.01}, True, None)
    assert split_pace({"steps_per_second": 20}) == ({}, True, 20.0)
    assert split_pace({"lr": 0.01}) == ({"lr": 0.01}, False, None)


@pytest.mark.parametrize("pace", [0, -1, float("inf"), float("nan"), 100_001, "50", True])
def test_a_pace_out_of_bounds_is_refused_in_words(pace):
    with pytest.raises(ConfigError, match="steps_per_second: give a"):
        checked_pace(pace)


@pytest.mark.parametrize("changes, words", [
    ({"lr": -0.1}, "lr: give a number above 0 (got -0.1)"),
    ({"lr": 0}, "lr: give a number above 0 (got 0)"),
    ({"lr": 11}, "lr: give a number of at most 10 (got 11)"),
    ({"learning_rate": 0.1}, "learning_rate: not something this request takes: leave it out"),
    ({"lr": "0.1"}, 'lr: give a number, e.g. 0.5 (got "0.1")'),
    ({"batch_size": "64"}, 'batch_size: give a whole number, e.g. 3 (got "64")'),
    ({"batch_size": 64.0}, "batch_size: give a whole number, e.g. 3 (got 64.0)"),
    ({"hidden_sizes": [16, 16, 16, 16, 16]}, "hidden_sizes: give at most 4 hidden layers (got 5)"),
    ({"hidden_sizes": []}, "hidden_sizes: give at least 1 hidden layer (got 0)"),
    ({"hidden_sizes": [3000]}, "hidden_sizes[0]: give a number of at most 2,048 (got 3000)"),
    ({"lr": float("nan")}, "lr: give a finite number (got NaN): past ±1.8e308 (1e309, say) a number reads as "
                           "Infinity, and Infinity and NaN cannot be computed with"),
    ({"activation": "softplus"}, "activation: choose one of 'sigmoid', 'relu', 'tanh' or 'leaky_relu' (got \"softplus\")"),
    ({"momentum": 1.0}, "momentum: give a number below 1 (got 1.0)"),
    ({"epochs": 0}, "epochs: give a number of at least 1 (got 0)"),
    ({"seed": -1}, "seed: give a number of at least 0 (got -1)"),
])
def test_bad_values_are_refused_with_words_naming_the_field(changes, words):
    assert refusal(changes) == words


def test_several_problems_are_all_reported():
    message = refusal({"lr": -1, "colour": "red"})
    assert "lr: give a number above 0" in message
    assert "colour: not something this request takes" in message


def test_config_changes_must_be_an_object():
    with pytest.raises(ConfigError, match="config must be an object of setup fields"):
        TrainConfig().updated(["lr", 0.1])


def test_config_is_frozen():
    with pytest.raises(ValidationError):
        TrainConfig().lr = 0.5


def test_live_fields_are_those_that_do_not_need_new_weights():
    assert LIVE_FIELDS == {"lr", "batch_size", "momentum", "weight_decay", "epochs"}


def test_steps_per_epoch_rounds_up():
    assert TrainConfig(batch_size=64).steps_per_epoch(9500) == 149
    assert TrainConfig(batch_size=100).steps_per_epoch(1000) == 10
