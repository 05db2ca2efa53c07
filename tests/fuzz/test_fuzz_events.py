"""Bad input on every Socket.IO event, property-based (hypothesis): wrong types, wrong sizes,
NaN and infinities, huge numbers, deep nesting, unknown fields, huge declared image sizes.

The events are read from the server itself, so an event added later is fuzzed too. For each:
the answer is an acknowledgement `{"ok": bool, ...}`, a refusal says what is wrong in words
(never "internal error", never the validation library's sentences), a refused request changes
nothing (status, setup, step, weights), and the server keeps answering."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.web.transport import MAX_ATTACHMENTS
from tests.support.helpers import in_peoples_words

# Modest counts: every event gets both strategies; the whole file stays within seconds.
FUZZ = settings(max_examples=15, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
FUZZ_NO_PAYLOAD = settings(FUZZ, max_examples=6)  # events that take no payload: a few suffice

BLANK = [0.0] * 784
# A valid request per known event: mutations of these reach past the first check. Events
# not listed are fuzzed with arbitrary payloads only.
VALID = {
    "predict": [{"pixels": BLANK}, {"image": {"width": 28, "height": 28, "data": bytes(784)}}],
    "train:start": [None, {"config": {"lr": 0.01}}],
    "train:pause": [None],
    "train:step": [{"batches": 1}],
    "train:reset": [None, {"config": {"seed": 1}}],
    "config:update": [{"lr": 0.01}, {"batch_size": 32}],
    "pace:update": [{"steps_per_second": 20}, {"steps_per_second": None}],
    "explain:forward": [{"pixels": BLANK, "neuron": 3, "layer": "hidden", "top": 4}],
    "inside:subscribe": [{"streams": ["weights"]}, {"streams": ["weights-delta", "distributions-delta"]}],
    "broadcasts:subscribe": [{"topics": ["evaluation"]}, {"topics": []}],
    "inside:neuron": [{"index": 3}, {"index": 3, "pixels": BLANK}],
    "evaluate:get": [None],
    "evaluate:cell": [{"actual": 1, "predicted": 2}],
    "dataset:get": [None],
    "dataset:samples": [{"offset": 0}],
    "runs:list": [None],
    "runs:get": [{"id": 1}],
    "runs:rename": [{"id": 1, "name": "renamed"}],
    "runs:delete": [{"id": 1}],
    "runs:restore": [{"id": 1}],
    "setup:link": [{"query": "?hidden=256&act=sigmoid&lr=0.01&batch=64&seed=0"}],
    "run:create": [None, {"config": {"lr": 0.01}}, {"weights": "shared"}],
    "run:watch": [{"run": "shared"}],
    "runs:private": [None],
    "run:put_away": [{"run": "p-000000000000"}],
    "lesson:steps": [None],
    "lesson:reveal": [{"step": 1}, {"step": 6, "pixels": BLANK}],
    "replay:frame": [{"step": 0}],
    "replay:predict": [{"step": 0, "pixels": BLANK}],
    "poll:open": [{"step": 1}],
    "poll:answer": [{"poll": 1, "choice": 0}],
    "poll:reveal": [None, {"pixels": BLANK}],
    "poll:close": [None],
    "poll:get": [None],
    # A script's own network (tests/app/test_watch_frames.py fuzzes frames of a real watched run)
    "watch:open": [{"name": "tiny", "layers": [{"path": "0", "in_features": 784, "out_features": 4, "bias": True},
                                               {"path": "1", "in_features": 4, "out_features": 10, "bias": True}],
                    "chain": {"activations": ["relu", None]}}],
    "watch:steps": [{"run": "p-000000000000", "steps": [1, 2], "loss": [1.0, 0.5], "numbers": {"accuracy": [0.1, None]}}],
    "watch:snapshot": [{"run": "p-000000000000", "step": 1, "dtype": "float32", "data": bytes(8), "layers": [{}]}],
    "watch:close": [{"run": "p-000000000000"}],
    "watch:control": [{"run": "p-000000000000"}],
    "watch:weights": [{"layer": 0}, {"layer": 1}],
}
NOT_REQUESTS = {"connect", "disconnect", "*"}

nasty_numbers = st.sampled_from([
    math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 2**31, 2**53 + 1, 2**63, 2**64, -2**63,
    10**30, -1, 0, -0.0, 1.5, True, False])
leaves = st.one_of(
    st.none(), st.booleans(), nasty_numbers,
    st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), st.binary(max_size=64),
    st.sampled_from(["0.1", "", "NaN", "1e999", "__proto__", "../../etc/passwd", "\x00", "é" * 20]),
)
json_like = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=25)
KNOWN_FIELDS = sorted({key for payloads in VALID.values() for p in payloads if isinstance(p, dict)
                       for key in p} | {"width", "height", "data", "lr", "seed", "hidden_sizes",
                                        "epochs", "steps_per_second"})
big_values = st.sampled_from([
    [0.5] * 10_000, "x" * 100_000, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    {"width": 10**9, "height": 10**9, "data": b"\x00" * 16},
    {"width": 1024, "height": 1024, "data": b"\x01"}, list(range(785)), [math.nan] * 784,
    [1e308] * 784, [-1] * 784, [[0.0] * 28] * 28, {str(i): i for i in range(500)},
])
deep = st.integers(min_value=20, max_value=150).map(
    lambda depth: {"pixels": _nest(depth)} if depth % 2 else _nest(depth))


def _nest(depth):
    value = 0.5
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


def mutations_of(payload):
    """A valid payload with one field replaced, removed, or an unknown field added."""
    if not isinstance(payload, dict) or not payload:
        return st.one_of(json_like, big_values)

    def replace(args):
        key, value = args
        changed = copy.copy(payload)
        changed[key] = value
        return changed

    def drop(key):
        return {k: v for k, v in payload.items() if k != key}

    keys = st.sampled_from(sorted(payload))
    return st.one_of(
        st.tuples(keys, nasty_numbers).map(replace),
        st.tuples(keys, st.one_of(json_like, big_values)).map(replace),
        keys.map(drop),
        st.tuples(st.text(min_size=1, max_size=12).filter(lambda k: k not in payload),
                  json_like).map(lambda kv: {**payload, kv[0]: kv[1]}),
        st.tuples(st.sampled_from(KNOWN_FIELDS).filter(lambda k: k not in payload),
                  json_like).map(lambda kv: {**payload, kv[0]: kv[1]}),
    )


def payloads_for(event):
    strategies = [json_like, big_values, deep,
                  st.dictionaries(st.sampled_from(KNOWN_FIELDS), json_like, max_size=4)]
    strategies += [mutations_of(valid) for valid in VALID.get(event, [])]
    return st.one_of(strategies)


def request_events(app):
    server = app.extensions["playground"].socketio.server
    inline = app.extensions["playground"].inline_events  # predict: answered inline
    handlers = set(server.handlers.get("/", {})) | set(inline)
    return sorted(handlers - NOT_REQUESTS)


def fingerprint(session):
    """What a refused request must not change: the run's status, setup, progress, weights."""
    session.pause()  # a request that was accepted may have started training
    state = session.state()
    weights = [p.detach().clone() for p in session.trainer.model.parameters()]
    return ({key: state[key] for key in ("status", "run_id", "config", "step", "epoch", "notice")},
            weights)


def same(before, after):
    return before[0] == after[0] and len(before[1]) == len(after[1]) and all(
        torch.equal(a, b) for a, b in zip(before[1], after[1]))


def test_the_spine_events_are_all_fuzzed_with_valid_examples(app):
    spine = {"predict", "train:start", "train:pause", "train:step", "train:reset", "config:update"}
    assert spine <= set(request_events(app)) and spine <= set(VALID)


@pytest.fixture
def fuzz_client(app):
    socketio = app.extensions["playground"].socketio
    client = socketio.test_client(app, flask_test_client=app.test_client())
    client.get_received()
    yield client
    client.disconnect()


def refill_rate_limits(client, app):
    """Fuzzing sends far more predictions than a person draws: lift this client's rate buckets
    (tests/app/test_limits.py tests the limit itself)."""
    environ = app.extensions["playground"].socketio.server.environ.get(client.eio_sid, {})
    for key in [k for k in environ if k.startswith("playground.rate.")]:
        del environ[key]


def check_answer(answer, event, payload, before, session):
    assert isinstance(answer, dict) and isinstance(answer.get("ok"), bool), (event, payload, answer)
    if not answer["ok"]:
        error = answer.get("error")
        assert isinstance(error, str) and error.strip(), (event, payload, answer)
        assert "internal error" not in error, (event, payload, error)
        assert in_peoples_words(error), (event, payload, error)
        assert same(before, fingerprint(session)), f"{event} refused {payload!r} but changed the run"


def binary_parts(value) -> int:
    if isinstance(value, (bytes, bytearray)):
        return 1
    if isinstance(value, dict):
        return sum(binary_parts(v) for v in value.values())
    if isinstance(value, list):
        return sum(binary_parts(v) for v in value)
    return 0


def emit(client, event, payload):
    """The acknowledgement; None when the packet itself is refused: more binary attachments
    than a packet may carry (the real server logs and drops it; the test client raises)."""
    if binary_parts(payload) > MAX_ATTACHMENTS:
        with pytest.raises(ValueError, match="binary attachments"):
            client.emit(event, payload, callback=True)
        return None
    return client.emit(event, payload, callback=True)


def fuzz_event(app, session, client, event, payload):
    refill_rate_limits(client, app)
    before = fingerprint(session)
    answer = emit(client, event, payload)
    if answer is None:
        assert same(before, fingerprint(session)), f"a dropped {event} packet changed the run"
        return
    check_answer(answer, event, payload, before, session)
    if answer["ok"] and session.config.model_dump() != type(session.config)().model_dump():
        session.reset(type(session.config)().model_dump())  # keep the next example quick


@pytest.mark.parametrize("event", sorted(VALID))
def test_each_event_answers_bad_input_in_words_and_changes_nothing(app, session, fuzz_client, event):
    if event not in request_events(app):
        pytest.fail(f"{event} is listed in VALID but the server has no such event")

    @(FUZZ_NO_PAYLOAD if VALID[event] == [None] else FUZZ)
    @given(payload=payloads_for(event))
    def check(payload):
        fuzz_event(app, session, fuzz_client, event, payload)

    check()
    # Still serving: a plain prediction from a brand-new viewer.
    socketio = app.extensions["playground"].socketio
    fresh = socketio.test_client(app, flask_test_client=app.test_client())
    assert fresh.emit("predict", {"pixels": BLANK}, callback=True)["ok"]
    fresh.disconnect()


def test_every_event_the_server_answers_has_valid_examples_so_none_goes_unfuzzed(app):
    assert set(request_events(app)) == set(VALID)


@FUZZ
@given(data=st.data())
def test_events_the_server_does_not_know_change_nothing(app, session, fuzz_client, data):
    name = data.draw(st.one_of(st.text(min_size=1, max_size=30),
                               st.sampled_from(["train:start ", "TRAIN:START", "train", "predict\x00",
                                                "__proto__", "connect", "disconnect", "message"])))
    payload = data.draw(json_like)
    before = fingerprint(session)
    answer = emit(fuzz_client, name, payload) if name not in ("connect", "disconnect") else None
    assert answer is None or isinstance(answer, (dict, type(None)))
    assert same(before, fingerprint(session))
    assert fuzz_client.is_connected()
