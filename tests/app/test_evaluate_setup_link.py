"""The setup lives in a readable link (?hidden=256&act=sigmoid&opt=adam&lr=0.001&seed=0): every
setup field goes into the link and comes back the same; out-of-bounds or malformed values are
refused in words that name the link's key; unknown keys are ignored; missing keys are defaults."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from server.experiment import TrainConfig
from server.experiment import LINK_KEYS, LinkError, config_from_query, config_to_query

SETUP_FIELDS = set(TrainConfig.model_fields) - {"steps_per_second"}

# One value per field that differs from the default, so each field's trip is visible.
NON_DEFAULTS = {
    "hidden_sizes": [512, 64, 32, 16],
    "activation": "leaky_relu",
    "output": "softmax",
    "optimizer": "sgd",
    "lr": 0.0375,
    "momentum": 0.85,
    "weight_decay": 0.0005,
    "batch_size": 128,
    "epochs": 7,
    "seed": 123456,
}


def parse_query(query: str) -> dict:
    return dict(part.split("=", 1) for part in query.split("&"))


def test_the_link_names_every_setup_field_and_not_the_pace():
    assert set(LINK_KEYS.values()) == SETUP_FIELDS == set(NON_DEFAULTS)


def test_the_default_link_reads_like_the_issue_says():
    assert config_to_query(TrainConfig()) == (
        "hidden=256&act=sigmoid&out=logits&opt=adam&lr=0.001&mom=0.9&wd=0&batch=64&epochs=20&seed=0")


@pytest.mark.parametrize("field", sorted(NON_DEFAULTS))
def test_each_setup_field_round_trips_through_the_link_endpoint(client, field):
    config = TrainConfig().updated({field: NON_DEFAULTS[field]})
    query = config_to_query(config)
    answer = client.get(f"/api/setup?{query}")
    assert answer.status_code == 200, answer.json
    assert answer.json["config"][field] == NON_DEFAULTS[field]
    assert answer.json["config"] == config.model_dump()
    assert answer.json["query"] == query


def test_all_fields_at_once_round_trip_and_the_page_keys_stay_readable(client):
    config = TrainConfig().updated(NON_DEFAULTS)
    query = config_to_query(config)
    assert "hidden=512,64,32,16" in query and "act=leaky_relu" in query and "lr=0.0375" in query
    assert client.get(f"/api/setup?{query}").json["config"] == config.model_dump()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hidden=st.lists(st.integers(1, 2048), min_size=1, max_size=4),
    activation=st.sampled_from(["sigmoid", "relu", "tanh", "leaky_relu"]),
    output=st.sampled_from(["logits", "softmax"]),
    optimizer=st.sampled_from(["sgd", "adam"]),
    lr=st.floats(1e-7, 10, allow_nan=False),
    momentum=st.floats(0, 0.999),
    weight_decay=st.floats(0, 1),
    batch=st.integers(1, 4096),
    epochs=st.integers(1, 200),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_valid_setup_survives_the_trip(hidden, activation, output, optimizer, lr, momentum, weight_decay,
                                           batch, epochs, seed):
    config = TrainConfig(hidden_sizes=hidden, activation=activation, output=output, optimizer=optimizer, lr=lr,
                         momentum=momentum, weight_decay=weight_decay, batch_size=batch, epochs=epochs, seed=seed)
    back, ignored = config_from_query(parse_query(config_to_query(config)))
    assert ignored == []
    assert back.model_dump(exclude={"lr", "momentum", "weight_decay"}) == config.model_dump(
        exclude={"lr", "momentum", "weight_decay"})
    for field in ("lr", "momentum", "weight_decay"):  # written with 10 significant digits
        assert getattr(back, field) == pytest.approx(getattr(config, field), rel=1e-9, abs=1e-12)


def test_missing_keys_take_the_defaults_not_the_running_setup(client, session):
    session.reset({"lr": 0.05, "hidden_sizes": [32]})
    answer = client.get("/api/setup?act=relu")
    assert answer.json["config"] == TrainConfig(activation="relu").model_dump()


def test_unknown_keys_are_ignored_and_named(client):
    answer = client.get("/api/setup?hidden=64&token=abc&color=blue")
    assert answer.status_code == 200
    assert answer.json["config"]["hidden_sizes"] == [64]
    assert sorted(answer.json["ignored"]) == ["color", "token"]


@pytest.mark.parametrize("query, words", [
    ("lr=50", "lr=50 in the link: give a number of at most 10"),
    ("lr=0", "lr=0 in the link: give a number above 0"),
    ("lr=nan", "lr=nan in the link: give a finite number"),
    ("mom=1", "mom=1 in the link: give a number below 1"),
    ("wd=2", "wd=2 in the link: give a number of at most 1"),
    ("batch=0", "batch=0 in the link: give a number of at least 1"),
    ("batch=5000", "batch=5000 in the link: give a number of at most 4,096"),
    ("epochs=201", "epochs=201 in the link: give a number of at most 200"),
    ("seed=-1", "seed=-1 in the link: give a number of at least 0"),
    ("hidden=3000", "hidden=3000 in the link (layer 1): give a number of at most 2,048"),
    ("hidden=256,0", "hidden=256,0 in the link (layer 2): give a number of at least 1"),
    ("hidden=8,8,8,8,8", "hidden=8,8,8,8,8 in the link: give at most 4 hidden layers (got 5)"),
    ("act=softplus", "act=softplus in the link: choose one of 'sigmoid', 'relu', 'tanh' or 'leaky_relu'"),
    ("opt=rmsprop", "opt=rmsprop in the link: choose one of 'sgd' or 'adam'"),
    ("out=probabilities", "out=probabilities in the link: choose one of 'logits' or 'softmax'"),
    ("batch=1.5", "batch='1.5' in the link: expected a whole number"),
    ("hidden=256;128", "hidden='256;128' in the link: expected whole numbers separated by commas"),
    ("lr=fast", "lr='fast' in the link: expected a number"),
])
def test_out_of_bounds_and_malformed_values_are_refused_in_words(client, query, words):
    answer = client.get(f"/api/setup?{query}")
    assert answer.status_code == 400
    assert words in answer.json["error"]


def test_a_refused_link_changes_nothing(client, session):
    before = session.state()
    assert client.get("/api/setup?lr=99&hidden=256").status_code == 400
    assert session.state()["config"] == before["config"] and session.state()["run_id"] == before["run_id"]


def test_words_are_read_forgivingly(client):
    answer = client.get("/api/setup?" + urlencode({"act": "Leaky-ReLU", "opt": "ADAM"}))
    assert answer.json["config"]["activation"] == "leaky_relu" and answer.json["config"]["optimizer"] == "adam"


def test_a_very_long_value_is_refused():
    with pytest.raises(LinkError, match="too long"):
        config_from_query({"hidden": ",".join(["1"] * 100)})


def test_a_link_config_applied_with_train_reset_gives_that_setup(client, sio_client, session):
    config = client.get("/api/setup?hidden=128,64&act=tanh&opt=sgd&lr=0.05&seed=3").json["config"]
    setup = {k: v for k, v in config.items() if k != "steps_per_second"}
    answer = sio_client.emit("train:reset", {"config": setup}, callback=True)
    assert answer["ok"], answer
    assert session.config.hidden_sizes == [128, 64] and session.config.activation == "tanh"
    assert session.trainer.model.summary()["shape"] == [784, 128, 64, 10]
