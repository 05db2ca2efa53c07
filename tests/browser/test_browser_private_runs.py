"""Everyone their own run, in the browser: a page presses "Train my own copy" and trains a run of
its own while a page on the shared run sees nothing change; that second page (another browser
context, so another viewer) opens the first one's run link and watches it read-only, with every
control off, the keys too; it goes back to the shared run; a reload keeps the first page's run
its own."""
from __future__ import annotations

import numpy as np
import pytest
import requests
from playwright.sync_api import expect

from server import create_app
from tests.support.browser import SEVEN, TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.support.helpers import LiveServer, socketio_client, wait_for

pytestmark = pytest.mark.browser

# A slow, long shared setup: the private copy takes it, and is still running while we look.
SLOW_LONG = {"steps_per_second": 10, "epochs": 50}
CONTROLS = ("train-start", "train-pause", "train-step", "train-reset", "speed", "apply-setup", "trap-logits",
            "trap-softmax", "upload-checkpoint")

TILES_AFTER = "(step) => Number(document.querySelector('[data-testid=hidden-weights]').dataset.step) > step"
EVALUATED_AFTER = "(step) => Number(document.querySelector('[data-testid=confusion-matrix]').dataset.step) > step"


def run_status(server, key: str) -> str:
    """What the engine holding the run says of it (not what any page shows)."""
    return server.playground.request("state", {"run": key})["state"]["status"]


@pytest.fixture
def teacher(live_server):
    """The shared run, stepped a little by its teacher (a Socket.IO client): not at step 0."""
    client = socketio_client(live_server.url)
    assert client.call("config:update", SLOW_LONG, timeout=10)["ok"]
    assert client.call("train:step", {"batches": 3}, timeout=10)["ok"]
    wait_for(lambda: live_server.session.trainer.global_step == 3, what="3 shared steps")
    yield client
    client.disconnect()


def test_own_run_trains_alone_is_watched_read_only_through_its_link_and_stays_its_owners(browser, live_server, teacher,
                                                                                       tmp_path):
    screen = {"viewport": {"width": 1440, "height": 900}}
    with own_page(browser, **screen) as first, own_page(browser, **screen) as second:
        mine = PlaygroundPage(first).open(live_server)
        other = PlaygroundPage(second).open(live_server)
        other.wait_for_owner("shared")
        shared_step, shared_status = other.step(), other.text("status")
        assert shared_step == 3

        # A drawing, read by the shared run's network.
        mine.draw(SEVEN)
        mine.settled_prediction()
        said_by_shared = mine.probabilities()

        # Train my own copy: the page is on a run of its own, training from the shared weights.
        key = mine.train_my_own_copy()
        assert key and key.startswith("p-")
        mine.wait_for_status("running")
        first.wait_for_function("() => Number(document.querySelector('[data-testid=step-count]')"
                                ".textContent.match(/step (\\d+)/)[1]) >= 8", timeout=TIMEOUT_MS)
        expect(mine.by_id("dataset-info")).to_contain_text("a copy of the shared run's weights at step 3")
        first.wait_for_function(TILES_AFTER, arg=5, timeout=TIMEOUT_MS)  # the live views: its own run's
        expect(mine.by_id("run-link")).to_have_value(f"{live_server.url}/?run={key}")
        expect(mine.by_id("download-checkpoint")).to_have_attribute("href", f"/api/checkpoint?run={key}")
        expect(mine.by_id("export-python")).to_have_attribute("href", f"/api/export.py?run={key}")
        expect(mine.by_id("code-download")).to_have_attribute("href", f"/api/code.py?run={key}")
        assert "run=" not in mine.by_id("share-link").input_value()  # the setup's link is the setup only
        expect(mine.by_id("shared-run")).to_be_visible()
        expect(mine.by_id("private-run")).to_be_hidden()
        mine.screenshot("private-runs/own-run-1440.png")

        # The runs list marks as live the record of the run each page is on: mine on my page,
        # the shared run's on the other.
        for page, whose in ((first, "yours"), (second, "the shared run")):
            page.locator(by_id("runs")).scroll_into_view_if_needed()
            live = page.locator(f'{by_id("runs")} li.live')
            expect(live).to_have_count(1, timeout=TIMEOUT_MS)
            expect(live.locator(".run-whose")).to_have_text(whose)

        # The page on the shared run saw nothing of it: its step and status stay, so does the run.
        assert other.step() == shared_step and other.text("status") == shared_status
        assert live_server.session.trainer.global_step == shared_step and live_server.session.status != "running"

        # The second page opens the first one's link: someone's run, watched read-only.
        other.open(live_server, f"?run={key}")
        other.wait_for_owner("someone")
        for control in CONTROLS:
            expect(other.by_id(control)).to_be_disabled()
        expect(other.by_id("read-only-reason")).to_contain_text("Only its owner can train this run")
        expect(other.by_id("run-badge")).to_have_text("watching someone's run")
        other.screenshot("private-runs/watching-1440.png")
        # The runs list's Restore would restart the run on screen: not offered (the list is there).
        other.by_id("runs").scroll_into_view_if_needed()
        expect(second.locator('[data-testid^="run-whose-"]').first).to_be_attached(timeout=TIMEOUT_MS)
        expect(second.locator('[data-testid^="run-restore-"]')).to_have_count(0)
        expect(other.by_id("private-run")).to_be_visible()
        # It sees the run move (the owner's steps), and its keys send nothing: Space would pause.
        seen = other.step()
        second.wait_for_function(f"() => Number(document.querySelector('[data-testid=step-count]')"
                                 f".textContent.match(/step (\\d+)/)[1]) > {seen}", timeout=TIMEOUT_MS)
        other.by_id("architecture").click()  # the page has the keyboard, no control has focus
        second.keyboard.press(" ")
        expect(other.by_id("notice-text")).to_contain_text("The keys do nothing here")
        second.keyboard.press("s")
        assert mine.text("status") == "running"
        assert run_status(live_server, key) == "running"

        # Back to the shared run: the address loses ?run=, the page shows the shared run as it was.
        other.back_to_shared_run()
        assert other.run_key() is None
        expect(other.by_id("run-badge")).to_be_hidden()
        wait_for(lambda: other.step() == shared_step, timeout=30, what="the shared run's step again")
        expect(other.by_id("train-step")).to_be_enabled()

        # The owner goes to the shared run (the drawing is read by the shared network again) and
        # comes back to its own.
        mine.settled_prediction()
        assert not np.allclose(mine.probabilities(), said_by_shared, atol=1e-3)  # its own run has learnt
        mine.by_id("confusion-matrix").scroll_into_view_if_needed()
        first.wait_for_function(EVALUATED_AFTER, arg=shared_step, timeout=TIMEOUT_MS)  # its own evaluation
        mine.back_to_shared_run()
        assert mine.run_key() is None
        wait_for(lambda: np.allclose(mine.probabilities(), said_by_shared, atol=1e-3), timeout=30,
                 what="the drawing read by the shared run's network again")
        expect(mine.by_id("hidden-weights")).to_have_attribute("data-step", str(shared_step), timeout=TIMEOUT_MS)
        mine.by_id("confusion-matrix").scroll_into_view_if_needed()  # (views off screen wait to be seen)
        expect(mine.by_id("confusion-matrix")).to_have_attribute("data-step", str(shared_step))  # the shared one's
        mine.by_id("my-run").click()
        mine.wait_for_owner("you")
        assert mine.run_key() == key

        # A reload keeps the first page's run its own: same viewer secret, same ?run=.
        mine.reload()
        mine.wait_for_owner("you")
        assert mine.run_key() == key
        expect(mine.by_id("train-pause")).to_be_enabled()
        mine.by_id("train-pause").click()
        mine.wait_for_status("paused")
        assert run_status(live_server, key) == "paused"

        # Its weights, downloaded by its link and uploaded again: into its own run (its viewer
        # secret goes with the upload), never the shared run.
        saved = tmp_path / "mine.pt"
        saved.write_bytes(requests.get(live_server.url + mine.by_id("download-checkpoint").get_attribute("href"),
                                       timeout=30).content)
        upload = mine.by_id("upload-checkpoint")
        upload.scroll_into_view_if_needed()
        upload.set_input_files(str(saved))
        expect(mine.by_id("checkpoint-status")).to_contain_text("your run restarted from them", timeout=TIMEOUT_MS)
        wait_for(lambda: mine.step() == 0, timeout=30, what="its own run restarted from the weights")
        assert live_server.session.trainer.global_step == shared_step


def test_someones_run_on_a_phone_and_a_dead_link_told_in_words(browser, live_server, teacher):
    with own_page(browser, viewport={"width": 1440, "height": 900}) as first, \
            own_page(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True) as phone:
        key = PlaygroundPage(first).open(live_server).train_my_own_copy()
        watcher = PlaygroundPage(phone).open(live_server, f"?run={key}")
        watcher.wait_for_owner("someone")
        expect(watcher.by_id("train-start")).to_be_disabled()
        watcher.screenshot("private-runs/watching-390.png")
        watcher.screenshot("private-runs/watching-390-controls.png", locator=phone.locator("#network-panel"))
        assert watcher.serious_axe_violations(by_id("run-bar"), ".topbar") == []
        PlaygroundPage(first).screenshot("private-runs/owner-1440.png")

        # A link whose run is not there: the shared run, and why, in the notice.
        watcher.open(live_server, "?run=p-000000000000")
        watcher.wait_for_owner("shared")
        expect(watcher.by_id("notice-text")).to_contain_text("The run of this link cannot be shown")
        assert watcher.run_key() is None


@pytest.fixture
def one_place_server(small_dataset, tmp_path):
    """A server that trains one private run at a time (one engine for private runs, one place in
    it): a second one started waits in line."""
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "max_runs": 1,
                      "engines": 2}, dataset=small_dataset)
    with LiveServer(app) as server:
        client = socketio_client(server.url)
        assert client.call("config:update", SLOW_LONG, timeout=10)["ok"]
        client.disconnect()
        yield server


def test_a_run_waiting_for_a_free_place_shows_its_place_in_line(browser, one_place_server):
    with own_page(browser) as first, own_page(browser) as second:
        ahead = PlaygroundPage(first).open(one_place_server)
        ahead.train_my_own_copy()
        ahead.wait_for_status("running")
        waiting = PlaygroundPage(second).open(one_place_server)
        expect(waiting.by_id("queue-position")).to_be_hidden()
        waiting.train_my_own_copy()
        expect(waiting.by_id("queue-position")).to_have_text("Waiting for a free place: 1st in line", timeout=TIMEOUT_MS)
        expect(waiting.by_id("status")).to_have_text("waiting")
        expect(waiting.by_id("train-start")).to_be_disabled()
        expect(ahead.by_id("queue-position")).to_be_hidden()
        waiting.screenshot("private-runs/queued-1400.png")
        # The place frees (the run ahead pauses): the waiting run trains, and the words go.
        ahead.by_id("train-pause").click()
        waiting.wait_for_status("running")
        expect(waiting.by_id("queue-position")).to_be_hidden()


def test_a_run_put_away_sends_its_pages_back_to_the_shared_run_in_words(browser, live_server, teacher):
    with own_page(browser) as first, own_page(browser) as second:
        owner = PlaygroundPage(first).open(live_server)
        key = owner.train_my_own_copy()
        watcher = PlaygroundPage(second).open(live_server, f"?run={key}")
        watcher.wait_for_owner("someone")
        # Its owner "gone" for good: the engine puts the run away at its next look.
        live_server.playground.engine.host_of(key).handle.engine.runs[key].last_seen = float("-inf")
        for page, whose in [(owner, "Your run"), (watcher, "The run you watched")]:
            page.wait_for_owner("shared")
            expect(page.by_id("notice-text")).to_contain_text(f"{whose} is closed: its owner was gone")
            expect(page.by_id("notice-text")).to_contain_text("in Runs, with its weights.")
            expect(page.by_id("notice-text")).to_contain_text("Showing the shared run.")
            assert page.run_key() is None
            wait_for(lambda page=page: page.step() == 3, timeout=30, what="the shared run's step on the page")
        # Its owner gets it back from its record (issue 23): the same run, its link again.
        expect(owner.by_id("notice-text")).to_contain_text('"Back to my own run" gets it back.')
        expect(watcher.by_id("my-run")).to_be_hidden()
        owner.by_id("my-run").click()
        owner.wait_for_owner("you")
        assert owner.run_key() == key
        expect(owner.by_id("notice-text")).to_contain_text("Your run is back from its record")
