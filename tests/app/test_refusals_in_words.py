"""Every refusal a person can meet says in plain words what is wrong and what to give, never the
validation library's sentence ("Input should be a valid number, got NoneType None", "String
should have at least 1 character", "List should have at most 4 items after validation, not 5"),
and changes nothing. Driven as clients drive the server: Socket.IO events through the Flask-
SocketIO test client, HTTP through the Flask test client, the command line through main()."""
from __future__ import annotations

import pytest

from server.__main__ import main
from server.experiment import TrainConfig
from tests.support.helpers import in_peoples_words

FAST = {"batch_size": 250}


def refused(answer) -> str:
    assert answer["ok"] is False, answer
    assert in_peoples_words(answer["error"]), answer["error"]
    return answer["error"]


def test_an_empty_run_name_is_refused_in_words_and_the_name_is_kept(session, sio_client):
    session.reset(FAST)
    session.step(2)
    session.reset(FAST)  # run 1 is recorded
    before = sio_client.emit("runs:get", {"id": 1}, callback=True)["run"]["name"]

    for empty in ("", "   "):
        error = refused(sio_client.emit("runs:rename", {"id": 1, "name": empty}, callback=True))
        assert error == "a run's name cannot be empty: type a name for run #1 (its old name is kept)"

    long_error = refused(sio_client.emit("runs:rename", {"id": 1, "name": "n" * 300}, callback=True))
    assert long_error == "a run's name can have at most 80 characters (this one has 300): shorten it"
    assert sio_client.emit("runs:get", {"id": 1}, callback=True)["run"]["name"] == before


def test_a_setup_link_with_five_hidden_layers_is_refused_in_words(client, sio_client, session):
    before = session.config
    query = "?hidden=8,8,8,8,8&lr=0.01"
    words = "hidden=8,8,8,8,8 in the link: give at most 4 hidden layers (got 5)"

    assert refused(sio_client.emit("setup:link", {"query": query}, callback=True)) == words
    response = client.get("/api/setup" + query)
    assert response.status_code == 400 and response.get_json()["error"] == words
    assert session.config == before


@pytest.mark.parametrize("query, words", [
    ("hidden=256,0", "hidden=256,0 in the link (layer 2): give a number of at least 1"),
    ("lr=50", "lr=50 in the link: give a number of at most 10"),
    ("act=softplus", "act=softplus in the link: choose one of 'sigmoid', 'relu', 'tanh' or 'leaky_relu'"),
    ("batch=1.5", "batch='1.5' in the link: expected a whole number"),
])
def test_each_bad_link_value_says_what_to_give(client, query, words):
    response = client.get("/api/setup?" + query)
    assert response.status_code == 400
    assert response.get_json()["error"] == words


@pytest.mark.parametrize("literal, words", [
    # JSON's 1e309 is past float64: Python reads it as Infinity; the page's JSON.stringify
    # sends a non-finite number as null.
    ("1e309", "x[0][0]: give a finite number (got Infinity): past ±1.8e308 (1e309, say) a number "
              "reads as Infinity, and Infinity and NaN cannot be computed with"),
    ("null", "x[0][0]: give a number, e.g. 0.5 (got null)"),
    ("2e7", "x[0][0]: give a number of at most 1,000,000 (got 20000000.0)"),
    ('"1,5"', 'x[0][0]: give a number, e.g. 0.5 (got "1,5")'),
])
def test_the_sandbox_refuses_a_number_it_cannot_use_in_words(client, literal, words):
    body = '{"x": [[%s, 1.0]], "weight": [[1.0, 2.0]], "bias": [0.0]}' % literal
    response = client.post("/api/linear", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == words


@pytest.mark.parametrize("event, payload, words", [
    ("train:start", {"config": {"lr": 11}}, "lr: give a number of at most 10 (got 11)"),
    ("train:reset", {"config": {"hidden_sizes": [64] * 5}}, "hidden_sizes: give at most 4 hidden layers (got 5)"),
    ("config:update", {"batch_size": 64.0}, "batch_size: give a whole number, e.g. 3 (got 64.0)"),
    ("config:update", {"activation": "softplus"},
     "activation: choose one of 'sigmoid', 'relu', 'tanh' or 'leaky_relu' (got \"softplus\")"),
    ("config:update", {"learning_rate": 0.1}, "learning_rate: not something this request takes: leave it out"),
    ("train:step", {"batches": None}, "batches: give a whole number, e.g. 3 (got null)"),
    ("pace:update", {}, "steps_per_second: missing: send it"),
    ("predict", {"image": {"width": 2, "height": 2, "data": "abcd"}},
     'image.data: give binary data (a byte array) (got "abcd")'),
    ("predict", {"pixels": [0.0] * 10_000}, "pixels: give at most 3,136 numbers (got 10,000)"),
    ("explain:forward", {"pixels": [0.0] * 784, "neuron": "3"}, 'neuron: give a whole number, e.g. 3 (got "3")'),
    ("inside:subscribe", {"streams": "weights"}, 'streams: give a list, e.g. [1, 2] (got "weights")'),
    ("evaluate:cell", {"actual": 10, "predicted": 2}, "actual: give a number of at most 9 (got 10)"),
])
def test_socket_refusals_say_what_to_give_and_change_nothing(session, sio_client, event, payload, words):
    before = (session.state()["status"], session.config, session.state()["step"])
    assert refused(sio_client.emit(event, payload, callback=True)) == words
    assert (session.state()["status"], session.config, session.state()["step"]) == before


def test_a_config_refusal_names_every_wrong_field():
    with pytest.raises(ValueError) as refusal:
        TrainConfig().updated({"lr": -1, "momentum": 1.0})
    assert str(refusal.value) == "lr: give a number above 0 (got -1); momentum: give a number below 1 (got 1.0)"


@pytest.mark.parametrize("method, url, words", [
    ("get", "/api/nothing-here", "there is nothing at /api/nothing-here: docs/protocol.md lists the playground's addresses"),
    ("delete", "/api/linear", "/api/linear does not take DELETE: use GET or POST"),
])
def test_the_web_frameworks_own_refusals_are_in_words_too(client, method, url, words):
    response = getattr(client, method)(url)
    assert response.status_code in (404, 405)
    assert response.get_json()["error"] == words


def test_a_bad_flag_is_refused_in_words(capsys):
    assert main(["--port", "abc"]) == 2
    assert capsys.readouterr().err == 'error: port: give a whole number, e.g. 3 (got "abc")\n'
