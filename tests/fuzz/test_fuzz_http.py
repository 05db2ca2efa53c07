"""Bad input on every HTTP endpoint, property-based (hypothesis): odd paths and path parameters,
query strings, bodies (JSON of every shape, NaN, huge numbers, deep nesting, random bytes) and
content types. The routes are read from the app, so an endpoint added later is fuzzed too.

For each: never a server error (5xx); an /api/ refusal is JSON with an "error" in words; a
refused request changes nothing; the server keeps answering."""
from __future__ import annotations

import json
import math
import re
from urllib.parse import quote, urlencode

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.helpers import in_peoples_words

FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

nasty_numbers = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 2**63, 2**64, -2**63,
                                 10**30, -1, 0, 1.5, True])
leaves = st.one_of(st.none(), st.booleans(), nasty_numbers, st.integers(min_value=-2**70, max_value=2**70),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
json_like = st.recursive(
    leaves, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                    st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=25)
# Field names the endpoints know, so fuzzed bodies get past "unknown field" now and then.
KNOWN_KEYS = ["x", "weight", "bias", "in_features", "out_features", "seed", "lr", "hidden", "act", "out",
              "opt", "mom", "wd", "batch", "epochs", "speed", "config", "name", "id", "token"]
VALID_BODIES = {
    "/api/linear": {"x": [[1.0, 2.0]], "weight": [[0.5, -0.5], [1.0, 1.0]], "bias": [0.0, 1.0]},
    "/api/linear/random": {"in_features": 3, "out_features": 2, "seed": 1},
}


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def body_mutations(valid):
    def replace(args):
        key, value = args
        return {**valid, key: value}
    keys = st.sampled_from(sorted(valid))
    return st.one_of(
        st.tuples(keys, st.one_of(nasty_numbers, json_like)).map(replace),
        keys.map(lambda key: {k: v for k, v in valid.items() if k != key}),
        st.tuples(st.text(min_size=1, max_size=8), json_like).map(lambda kv: {**valid, **{kv[0]: kv[1]}}),
    )


def bodies_for(path):
    json_bodies = st.one_of(
        json_like, st.dictionaries(st.sampled_from(KNOWN_KEYS), json_like, max_size=4),
        *([body_mutations(VALID_BODIES[path])] if path in VALID_BODIES else []))
    as_json = json_bodies.map(lambda body: (json.dumps(body, allow_nan=True).encode(), "application/json"))
    raw = st.tuples(st.binary(max_size=2000),
                    st.sampled_from(["application/json", "application/octet-stream", "text/plain",
                                     "application/x-www-form-urlencoded", "multipart/form-data", ""]))
    nested = st.sampled_from([100, 5_000, 200_000]).map(
        lambda depth: (deep_json(depth).encode(), "application/json"))
    special = st.sampled_from([(b"", "application/json"), (b"NaN", "application/json"),
                               (b"1e999999", "application/json"), (b'{"x": 1e999}', "application/json"),
                               (b"\xff\xfe\x00", "application/json"), (b"[1,2,3", "application/json")])
    return st.one_of(as_json, raw, nested, special)


def route_table(app):
    """(rule, method) for every route but the static files (fuzzed by path elsewhere)."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((rule, method))
    return routes


def fill_path(rule, draw):
    """A concrete URL for `rule`, its parameters drawn (often outside what they accept)."""
    values = {}
    for name in rule.arguments:
        converter = type(rule._converters[name]).__name__
        if converter == "IntegerConverter":
            value = draw(st.one_of(st.integers(min_value=-5, max_value=5), nasty_numbers.filter(
                lambda n: isinstance(n, int) and not isinstance(n, bool)),
                st.integers(min_value=0, max_value=2**80)))
            text = str(value)
        else:
            text = draw(st.one_of(st.text(min_size=1, max_size=30).filter(lambda t: "/" not in t),
                                  st.sampled_from(["..", ".", "%2e%2e", "plotly.min.js", "x" * 300])))
        values[name] = quote(text, safe="")
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values[m.group(1)], rule.rule)


def fingerprint(session):
    session.pause()
    state = session.state()
    return ({key: state[key] for key in ("status", "run_id", "config", "step", "notice")},
            [p.detach().clone() for p in session.trainer.model.parameters()])


def unchanged(before, after):
    return before[0] == after[0] and all(torch.equal(a, b) for a, b in zip(before[1], after[1]))


def check_response(response, method, url, before, session):
    where = f"{method} {url}"
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.data[:300]!r}"
    if url.startswith("/api/") and response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], \
            f"{where} -> {response.status_code} without a JSON error: {response.data[:200]!r}"
        assert in_peoples_words(body["error"]), f"{where} -> {body['error']}"
    if response.status_code >= 400:
        assert unchanged(before, fingerprint(session)), f"{where} was refused but changed the run"


def test_every_route_is_fuzzed(app):
    paths = {rule.rule for rule, _ in route_table(app)}
    assert {"/", "/healthz", "/vendor/<name>"} <= paths


@FUZZ
@given(data=st.data())
def test_every_endpoint_refuses_bad_requests_in_words_and_changes_nothing(app, session, data):
    client = app.test_client()
    rule, method = data.draw(st.sampled_from(route_table(app)), label="route")
    url = fill_path(rule, data.draw)
    query = data.draw(st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8),
                                      st.one_of(st.text(max_size=40), nasty_numbers.map(str)), max_size=4))
    if query:
        url += "?" + urlencode(query)
    body, content_type = data.draw(bodies_for(rule.rule)) if method in ("POST", "PUT", "PATCH") else (None, None)
    before = fingerprint(session)
    response = client.open(url, method=method, data=body, content_type=content_type or None)
    response.close()
    check_response(response, method, url, before, session)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_a_wrong_method_is_refused_not_crashed(app, client, method):
    for rule in app.url_map.iter_rules():
        if rule.arguments or rule.endpoint == "static":
            continue
        response = client.open(rule.rule, method=method)
        response.close()
        assert response.status_code == 405, (method, rule.rule)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_clear_400(app, client, session, depth):
    posts = [rule.rule for rule, method in route_table(app) if method == "POST" and not rule.arguments]
    assert posts
    for path in posts:
        before = fingerprint(session)
        response = client.post(path, data=deep_json(depth), content_type="application/json")
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.get_json()["error"]
        assert unchanged(before, fingerprint(session))
    assert client.get("/healthz").get_json()["status"] == "ok"
