"""Evaluate, compare and keep, in a real Chromium: clicking a confusion-matrix cell shows those
digits; two recorded runs overlay the learning curves; a shared link brings its setup (applied
at once when nothing was trained yet, offered with a banner when it would reset a run)."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import torch
from playwright.sync_api import expect

from tests.support.browser import ARTIFACTS, PlaygroundPage, by_id

pytestmark = pytest.mark.browser

FAST = {"batch_size": 250}  # 4 steps per epoch on the 1,000 test digits


def shoot(locator, name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / name))


def open_page(page, server, query: str = ""):
    PlaygroundPage(page).open(server, query)


def matrix_cell_position(page, actual: int, predicted: int) -> dict:
    """Where Plotly drew the cell (true `actual`, said `predicted`), in page pixels."""
    return page.locator(by_id("confusion-matrix")).evaluate("""(element, [actual, predicted]) => {
        const layout = element._fullLayout, box = element.getBoundingClientRect();
        return { x: box.left + layout.xaxis._offset + layout.xaxis.l2p(predicted),
                 y: box.top + layout.yaxis._offset + layout.yaxis.l2p(actual) };
    }""", [actual, predicted])


def test_clicking_a_confusion_matrix_cell_shows_those_digits(page, live_server, small_dataset):
    session = live_server.session
    session.reset(FAST)
    session.step(8)  # two epochs: the matrix of the end of epoch 2
    validation = small_dataset.validation
    with torch.no_grad():
        predicted = session.trainer.model(validation.images).argmax(1)
    labels = validation.labels.numpy()
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (labels, predicted.numpy()), 1)
    off_diagonal = matrix - np.diag(np.diag(matrix))
    actual, said = (int(v) for v in np.unravel_index(off_diagonal.argmax(), matrix.shape))
    count = int(matrix[actual, said])
    assert count > 0

    open_page(page, live_server)
    heatmap = page.locator(by_id("confusion-matrix"))
    heatmap.scroll_into_view_if_needed()
    expect(heatmap).to_have_attribute("data-step", "8")
    # What the page drew is what the network says, cell by cell.
    drawn = heatmap.evaluate("element => element.data[0].text")
    assert drawn == matrix.tolist()
    expect(page.locator(by_id("evaluation-when"))).to_have_text("(after epoch 2, step 8)")

    position = matrix_cell_position(page, actual, said)
    page.mouse.click(position["x"], position["y"])
    cell = page.locator(by_id("cell-digits"))
    expect(cell).to_be_visible()
    expect(cell).to_have_attribute("data-actual", str(actual))
    expect(cell).to_have_attribute("data-predicted", str(said))
    expect(page.locator(by_id("cell-title"))).to_contain_text(f"{count} {actual}s read as {said}")
    cards = page.locator(f'{by_id("cell-digit-grid")} .digit-card')
    expect(cards).to_have_count(min(count, 48))
    expected = [int(i) for i in np.nonzero((labels == actual) & (predicted.numpy() == said))[0][:48]]
    assert [int(i) for i in cards.evaluate_all("cards => cards.map(c => c.dataset.index)")] == expected
    for caption in cards.locator("figcaption").all_inner_texts():
        assert caption.startswith(f"{actual} → {said} (")

    # The diagonal cell: the digits read right.
    position = matrix_cell_position(page, said, said)
    page.mouse.click(position["x"], position["y"])
    expect(page.locator(by_id("cell-title"))).to_contain_text(f"{int(matrix[said, said])} {said}s read right")

    mistakes = page.locator(f'{by_id("mistakes")} .digit-card')
    expect(mistakes).to_have_count(min(40, int(off_diagonal.sum())))
    expect(page.locator(by_id("mistakes-summary"))).to_contain_text(f"{int(off_diagonal.sum())} of 200 validation digits are misread")
    shoot(page.locator("#evaluation-card"), "evaluate-matrix-click.png")
    shoot(page.locator("#mistakes-card"), "evaluate-mistakes.png")


def test_two_recorded_runs_overlay_the_learning_curves(page, live_server):
    session = live_server.session
    session.reset(FAST)
    session.step(8)  # run 1: logits
    session.reset({**FAST, "output": "softmax"})
    session.step(8)  # run 2: the question's softmax as written
    session.reset(FAST)  # run 3 is idle: nothing to record yet
    runs = live_server.app.extensions["playground"].engine.handle.engine.store.list()
    assert [r["config"]["output"] for r in runs] == ["softmax", "logits"]
    curves = {r["id"]: live_server.app.extensions["playground"].engine.handle.engine.store.get(r["id"]) for r in runs}

    open_page(page, live_server)
    page.locator("#runs-card").scroll_into_view_if_needed()  # off-screen views are drawn when seen
    items = page.locator(f'{by_id("runs")} li[data-run]')
    expect(items).to_have_count(2)
    page.locator(by_id("run-name-1")).fill("logits")
    page.locator(by_id("run-name-1")).press("Enter")
    expect(page.locator(by_id("run-name-1"))).to_have_value("logits")

    for run_id in (1, 2):
        page.locator(by_id(f"run-overlay-{run_id}")).check()
    loss = page.locator(by_id("loss-chart"))
    loss.scroll_into_view_if_needed()  # the curves are drawn while they are in view
    page.wait_for_function("""() => {
        const data = document.querySelector('[data-testid="loss-chart"]').data || [];
        return data.filter(t => t.meta && t.meta.run).length === 4;
    }""")
    traces = loss.evaluate("""element => element.data.filter(t => t.meta && t.meta.run).map(t => ({
        run: t.meta.run, curve: t.meta.curve, name: t.name, x: Array.from(t.x), y: Array.from(t.y), color: t.line.color }))""")
    by_curve = {(t["run"], t["curve"]): t for t in traces}
    for run_id, run in curves.items():
        train, validation = by_curve[(run_id, "train")], by_curve[(run_id, "validation")]
        assert train["x"] == [p["epoch"] for p in run["history"]]
        assert train["y"] == pytest.approx([p["loss"] for p in run["history"]])
        assert validation["x"] == [e["epoch"] for e in run["epochs"]]
        assert validation["y"] == pytest.approx([e["val_loss"] for e in run["epochs"]])
        assert train["color"] == validation["color"]
    assert by_curve[(1, "train")]["name"] == "#1 logits"  # the name given
    assert by_curve[(2, "train")]["name"] == "#2 softmax"  # what sets it apart from run 1
    assert by_curve[(1, "train")]["color"] != by_curve[(2, "train")]["color"]
    accuracy_traces = page.locator(by_id("accuracy-chart")).evaluate(
        "element => element.data.filter(t => t.meta && t.meta.run).length")
    assert accuracy_traces == 4
    # The live run's own traces are still first (new points extend them).
    assert loss.evaluate("element => element.data[0].name") == "train (running average)"

    shoot(page.locator("#curves-panel"), "evaluate-overlay-curves.png")
    shoot(page.locator("#runs-card"), "evaluate-runs.png")

    page.locator(by_id("run-overlay-2")).uncheck()
    loss.scroll_into_view_if_needed()
    page.wait_for_function("""() => document.querySelector('[data-testid="loss-chart"]').data
        .filter(t => t.meta && t.meta.run).length === 2""")


def form_values(page) -> dict:
    return page.locator(by_id("setup")).evaluate("""form => Object.fromEntries(
        [...form.elements].filter(e => e.name).map(e => [e.name, e.value]))""")


def test_a_shared_link_is_offered_with_a_banner_when_it_would_reset_a_run(page, live_server):
    session = live_server.session
    session.step(3)  # the shared run has progress: the link must not silently throw it away
    before = session.config

    open_page(page, live_server, "?hidden=128,64&act=relu&opt=sgd&lr=0.05&seed=3&note=hello")
    banner = page.locator(by_id("link-banner"))
    expect(banner).to_be_visible()
    expect(page.locator(by_id("link-banner-text"))).to_contain_text("differs from the running one")
    expect(page.locator(by_id("link-banner-text"))).to_contain_text("hidden layers 256 → 128,64")
    expect(page.locator(by_id("link-banner-text"))).to_contain_text("resets the shared run")
    # The form shows the link's setup; the server still runs its own.
    values = form_values(page)
    assert (values["hidden_layers"], values["hidden_size"], values["hidden_size_2"]) == ("2", "128", "64")
    assert (values["activation"], values["optimizer"], values["lr"], values["seed"]) == ("relu", "sgd", "0.05", "3")
    assert values["output"] == "logits" and values["epochs"] == "20"  # missing keys: the defaults
    assert session.config == before and session.trainer.global_step == 3
    assert "hidden=128,64" in page.url
    shoot(page.locator("#network-panel"), "evaluate-shared-link-banner.png")

    page.locator(by_id("link-apply")).click()
    expect(banner).to_be_hidden()
    expect(page.locator(by_id("architecture"))).to_have_text(re.compile(r"784 → 128 ReLU → 64 ReLU → 10"))
    config = session.config
    assert config.hidden_sizes == [128, 64] and config.activation == "relu" and config.optimizer == "sgd"
    assert config.lr == 0.05 and config.seed == 3 and session.trainer.global_step == 0
    # The address now holds the whole setup in force, other parameters kept.
    query = parse_qs(urlparse(page.url).query)
    assert query["hidden"] == ["128,64"] and query["act"] == ["relu"] and query["note"] == ["hello"]
    assert page.locator(by_id("share-link")).input_value() == page.url


def test_a_shared_link_applies_at_once_when_nothing_was_trained(page, live_server):
    session = live_server.session
    assert session.status == "idle" and session.trainer.global_step == 0
    open_page(page, live_server, "?hidden=64&act=tanh&out=softmax&lr=0.01&batch=32&epochs=3&wd=0.001&mom=0.8&opt=sgd&seed=11")
    expect(page.locator(by_id("notice"))).to_contain_text("Applied this link's setup")
    expect(page.locator(by_id("link-banner"))).to_be_hidden()
    config = session.config
    assert (config.hidden_sizes, config.activation, config.output, config.optimizer) == ([64], "tanh", "softmax", "sgd")
    assert (config.lr, config.batch_size, config.epochs, config.weight_decay, config.momentum, config.seed) == (
        0.01, 32, 3, 0.001, 0.8, 11)
    values = form_values(page)
    assert (values["hidden_size"], values["activation"], values["output"], values["weight_decay"]) == (
        "64", "tanh", "softmax", "0.001")


def test_an_emptied_run_name_is_refused_in_words_and_the_name_comes_back(page, live_server):
    session = live_server.session
    session.reset(FAST)
    session.step(4)
    session.reset(FAST)  # run 1 is recorded
    open_page(page, live_server)
    page.locator("#runs-card").scroll_into_view_if_needed()
    name = page.locator(by_id("run-name-1"))
    expect(name).to_have_value(re.compile(r"\S"))
    before = name.input_value()
    name.fill("")
    name.press("Enter")
    expect(page.locator(by_id("notice"))).to_have_text(re.compile(
        r"a run's name cannot be empty: type a name for run #1 \(its old name is kept\)"))
    expect(name).to_have_value(before)
    store = live_server.app.extensions["playground"].engine.handle.engine.store
    assert store.get(1, curves=False)["name"] == before
    shoot(page.locator("#runs-card"), "runs-empty-name-refused.png")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-empty-name-notice.png"))


def test_an_out_of_bounds_link_is_refused_in_words_and_changes_nothing(page, live_server):
    session = live_server.session
    before = session.config
    open_page(page, live_server, "?lr=50&hidden=256")
    expect(page.locator(by_id("link-banner-text"))).to_contain_text(
        "lr=50 in the link: give a number of at most 10")
    expect(page.locator(by_id("link-apply"))).to_be_hidden()
    assert session.config == before
    page.locator(by_id("link-dismiss")).click()
    expect(page.locator(by_id("link-banner"))).to_be_hidden()
    expect(page).to_have_url(re.compile(r"lr=0\.001"))


def test_the_address_follows_the_setup_and_the_form_edits_every_field(page, live_server):
    open_page(page, live_server)
    expect(page).to_have_url(re.compile(r"\?hidden=256&act=sigmoid&out=logits&opt=adam&lr=0\.001"))
    form = page.locator(by_id("setup"))
    form.locator("select[name=hidden_layers]").select_option("3")
    expect(form.locator("input[name=hidden_size_3]")).to_be_visible()
    expect(form.locator("input[name=hidden_size_4]")).to_be_hidden()
    page.wait_for_function("() => location.search.includes('hidden=256,128,128')")
    form.locator("input[name=hidden_size_2]").fill("32")
    form.locator("input[name=hidden_size_2]").press("Tab")
    form.locator("input[name=weight_decay]").fill("0.01")
    form.locator("input[name=weight_decay]").press("Tab")
    form.locator("select[name=output]").select_option("softmax")
    page.wait_for_function("() => location.search.includes('wd=0.01') && location.search.includes('out=softmax')")
    config = live_server.session.config
    assert config.hidden_sizes == [256, 32, 128] and config.weight_decay == 0.01 and config.output == "softmax"
    # Each control says whether it applies live or resets the model (from the server's list).
    badges = form.locator(".badge[data-field]").evaluate_all(
        "badges => Object.fromEntries(badges.map(b => [b.dataset.field, b.textContent]))")
    assert badges == {"hidden_sizes": "resets", "activation": "resets", "output": "resets", "optimizer": "resets",
                      "lr": "live", "momentum": "live", "weight_decay": "live", "batch_size": "live",
                      "epochs": "live", "seed": "resets"}
    # An out-of-bounds value is refused by the server, in words, and the form shows what holds.
    form.locator("input[name=batch_size]").fill("5000")
    form.locator("input[name=batch_size]").press("Tab")
    expect(page.locator(by_id("notice"))).to_contain_text("batch_size: give a number of at most 4,096")
    expect(form.locator("input[name=batch_size]")).to_have_value("64")


def test_the_cards_below_the_fold_ask_for_their_data_only_when_they_come_into_view(page, live_server):
    """Thirty pages opening at once share one link: below the fold, nothing is fetched at load."""
    sent = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    open_page(page, live_server)
    expect(page.locator(by_id("status"))).not_to_have_text("", timeout=20_000)
    page.wait_for_timeout(1_500)  # the load's own requests are done
    asked_for = lambda event: [frame for frame in sent if f'"{event}"' in frame]  # noqa: E731
    asked = lambda: asked_for("dataset:get")  # noqa: E731
    assert asked() == [], "the dataset's digits were asked for before the card was seen"
    assert asked_for("evaluate:get") == [], "the evaluation was asked for before its card was seen"

    page.locator(by_id("confusion-matrix")).scroll_into_view_if_needed()
    expect(page.locator(by_id("confusion-matrix"))).to_have_attribute("data-step", re.compile(r"\d+"), timeout=20_000)
    assert len(asked_for("evaluate:get")) == 1
    assert page.locator(by_id("dataset-rows")).locator("*").count() == 0

    page.locator(by_id("dataset-rows")).scroll_into_view_if_needed()
    expect(page.locator(by_id("dataset-rows")).locator("img, canvas").first).to_be_visible(timeout=20_000)
    assert len(asked()) == 1
    page.evaluate("() => window.scrollTo(0, 0)")
    page.locator(by_id("dataset-rows")).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    assert len(asked()) == 1, "asked again on every scroll"
