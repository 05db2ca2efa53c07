"""Controls that do what people expect: while the server is down the page says so and nothing can
be pressed, and once it is back the badge and the notices agree; no key press throws a run away
(Space never starts over a finished run, R asks twice and the reset offers the old run back); a
setup link asks before replacing uploaded weights, and a refused one leaves the address; a failed
upload does not leave "Loaded ..." on show; the softmax trap remembers the as-written run."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pytest
import requests
import torch
from playwright.sync_api import expect

from tests.support.browser import TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.support.helpers import REPO, wait_for

pytestmark = pytest.mark.browser

FAST = {"batch_size": 250}  # 4 steps per epoch on the 1,000 test digits


class ServerProcess:
    """`python -m server` in its own process on a fixed port: stopped and started again, it is
    a real server restart (the connection drops; the page reconnects to a new process)."""

    def __init__(self, port: int, data_dir):
        self.port, self.data_dir, self.process = port, str(data_dir), None
        self.url = f"http://127.0.0.1:{port}"

    def start(self):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("HOST", None)
        env.pop("PORT", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", str(self.port), "--data-dir", self.data_dir, "--device", "cpu",
             "--engines", "1"],  # the page's reconnection is what is tested (and two engines less to start)
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, "the server exited at start-up"
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            time.sleep(0.2)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_while_the_server_is_down_nothing_can_be_pressed_and_once_back_badge_and_notices_agree(browser, tmp_path):
    server = ServerProcess(free_port(), tmp_path).start()
    try:
        # While the server is down, the browser logs each refused reconnection attempt.
        # (or, caught mid-handshake by the stop, reset).
        with own_page(browser, expected_console=(r"ERR_CONNECTION_REFUSED", r"ERR_CONNECTION_RESET")) as page:
            server_down_and_back(page, server)
    finally:
        server.stop()


def server_down_and_back(page, server):
    playground = PlaygroundPage(page).open(server)
    page.click(by_id("train-start"))
    playground.wait_for_status("running")

    server.stop()
    expect(playground.by_id("connection")).not_to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    expect(playground.by_id("status")).to_have_text("not connected", timeout=TIMEOUT_MS)
    for control in ("train-start", "train-pause", "train-step", "train-reset", "apply-setup"):
        expect(playground.by_id(control)).to_be_disabled()
    expect(playground.by_id("notice-text")).to_contain_text("Lost the connection to the server")
    page.mouse.click(5, 300)  # the page has the focus, no control
    page.keyboard.press("s")  # a key while down: said in words, nothing sent
    expect(playground.by_id("notice-text")).to_contain_text("Not connected to the server")
    playground.screenshot("controls-server-down.png")

    server.start()  # a new process: its run starts idle
    expect(playground.by_id("connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    expect(playground.by_id("connection")).to_have_text("connected")
    expect(playground.by_id("notice")).to_be_hidden()  # no "not connected" left beside "connected"
    expect(playground.by_id("status")).to_have_text("idle")
    expect(playground.by_id("train-start")).to_be_enabled()
    expect(playground.by_id("train-pause")).to_be_disabled()
    page.click(by_id("train-step"))
    expect(playground.by_id("step-count")).to_contain_text("step 1 /", timeout=TIMEOUT_MS)


def run_to_the_end(session):
    session.reset({**FAST, "epochs": 1, "steps_per_second": None})
    session.start()
    wait_for(lambda: session.status == "done", timeout=60, what="the run to finish")


def test_space_never_starts_over_a_finished_run_and_r_asks_twice_then_offers_the_old_run_back(page, live_server):
    session = live_server.session
    run_to_the_end(session)
    finished_run, finished_steps = session.run_id, session.trainer.global_step
    finished_weights = {k: v.clone() for k, v in session.trainer.model.state_dict().items()}
    playground = PlaygroundPage(page).open(live_server)
    playground.wait_for_status("done")
    page.mouse.click(5, 300)  # the page itself has the focus, no control

    page.keyboard.press("Space")  # people press Space to pause just as a run ends
    expect(playground.by_id("notice-text")).to_contain_text("This run is finished, so Space does nothing")
    assert session.run_id == finished_run and session.status == "done"
    assert page.evaluate(f"() => document.querySelector('{by_id('loss-chart')}').data[0].x.length") > 0

    page.keyboard.press("r")
    expect(playground.by_id("notice-text")).to_contain_text("Press R again to reset")
    time.sleep(0.5)
    assert session.run_id == finished_run  # one R changes nothing
    page.keyboard.press("r")
    playground.wait_for_status("idle")
    assert session.run_id == finished_run + 1
    expect(playground.by_id("notice-text")).to_contain_text("The previous one is run #1 in Runs, with its weights")

    page.click(by_id("notice-restore"))  # the way back
    wait_for(lambda: session.weights_origin == f"restored from run #1 at step {finished_steps}",
             timeout=TIMEOUT_MS / 1000, what="the old run restored")
    restored = session.trainer.model.state_dict()
    assert all(torch.equal(restored[k], v) for k, v in finished_weights.items())
    expect(playground.by_id("notice-text")).to_contain_text("Restored run #1")


def saved_weights(session) -> bytes:
    buffer = io.BytesIO()
    torch.save(session.trainer.model.state_dict(), buffer)
    return buffer.getvalue()


def test_a_setup_link_opened_after_an_upload_asks_before_replacing_the_weights(page, live_server):
    session = live_server.session
    session.step(4)
    checkpoint = saved_weights(session)
    answer = requests.post(live_server.url + "/api/checkpoint", data=checkpoint,
                           headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert answer.status_code == 200, answer.text
    uploaded = {k: v.clone() for k, v in session.trainer.model.state_dict().items()}
    assert session.status == "idle" and session.trainer.global_step == 0  # loaded, not trained here

    PlaygroundPage(page).open(live_server, "?lr=0.01&seed=3")
    banner = page.locator(by_id("link-banner"))
    expect(banner).to_be_visible()
    expect(page.locator(by_id("link-banner-text"))).to_contain_text("starts from loaded weights (uploaded checkpoint)")
    assert session.config.lr == 0.001 and session.config.seed == 0
    assert all(torch.equal(session.trainer.model.state_dict()[k], v) for k, v in uploaded.items())
    assert "lr=0.01" in page.url  # the link stays while it is offered

    page.click(by_id("link-apply"))  # asked, and said yes: now it applies
    expect(banner).to_be_hidden()
    wait_for(lambda: session.config.lr == 0.01, timeout=TIMEOUT_MS / 1000, what="the link applied")
    assert session.weights_origin is None


def test_a_refused_link_leaves_the_address_bar_at_once(page, live_server):
    PlaygroundPage(page).open(live_server, "?lr=50&hidden=256")
    expect(page.locator(by_id("link-banner-text"))).to_contain_text("Nothing was changed; the address now holds the running setup")
    expect(page).to_have_url(re.compile(r"lr=0\.001"))
    assert "lr=50" not in page.url


def test_a_failed_upload_after_a_good_one_says_so_and_takes_the_loaded_notice_away(browser, live_server, tmp_path):
    # The browser logs the refused upload's 400; the page itself must say why, in words.
    with own_page(browser, expected_console=(r"status of 400",)) as page:
        failed_upload_after_a_good_one(page, live_server, tmp_path)


def failed_upload_after_a_good_one(page, live_server, tmp_path):
    session = live_server.session
    session.step(2)
    good = tmp_path / "model.pt"
    good.write_bytes(saved_weights(session))
    bad = tmp_path / "notes.pt"
    bad.write_bytes(b"these are notes, not a checkpoint")
    playground = PlaygroundPage(page).open(live_server)
    upload = playground.by_id("upload-checkpoint")
    upload.scroll_into_view_if_needed()

    upload.set_input_files(str(good))
    expect(playground.by_id("checkpoint-status")).to_have_attribute("data-kind", "ok", timeout=TIMEOUT_MS)
    expect(playground.by_id("notice-text")).to_contain_text("Loaded model.pt")

    upload.set_input_files(str(bad))
    status = playground.by_id("checkpoint-status")
    expect(status).to_have_attribute("data-kind", "error", timeout=TIMEOUT_MS)
    expect(status).to_have_attribute("role", "alert")  # said at once, where the person is looking
    expect(status).to_contain_text("notes.pt was not loaded:")
    server_words = requests.post(live_server.url + "/api/checkpoint", data=bad.read_bytes(), timeout=30,
                                 headers={"Content-Type": "application/octet-stream"}).json()["error"]
    expect(status).to_contain_text(server_words)  # the server's refusal, whole
    expect(playground.by_id("notice")).to_be_hidden()  # "Loaded model.pt" no longer stands


def test_the_softmax_trap_chart_remembers_the_as_written_run_after_a_reload(page, live_server):
    session = live_server.session
    session.reset({**FAST, "output": "softmax"})
    session.step(8)  # as written: recorded when the next reset replaces it
    session.reset({**FAST, "output": "logits"})
    session.step(8)
    playground = PlaygroundPage(page).open(live_server)
    chart = playground.by_id("trap-chart")
    for load in ("first", "reload"):
        if load == "reload":
            page.reload()
            expect(playground.by_id("connection")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
        chart.scroll_into_view_if_needed()
        expect(chart).to_have_attribute("data-outputs", "logits,softmax", timeout=TIMEOUT_MS)
        names = chart.evaluate("el => el.data.map(t => t.name)")
        assert any("run #1" in name and "softmax twice" in name for name in names), (load, names)
    playground.screenshot("controls-trap-remembered.png", locator=playground.by_id("softmax-trap"))


# Each field the setup form marks LIVE, and a value other than the default to give it.
LIVE_VALUES = {"lr": "0.005", "momentum": "0.8", "weight_decay": "0.0001", "batch_size": "64", "epochs": "7"}


def enter_each_live_field_then_reset_and_restore(playground, run, where: str):
    """Enter in each LIVE field applies it to `run` (the engine's) and throws nothing away; the
    Reset button's notice then names the record of the run it put away, and Restore brings
    exactly that run's weights back into the same run."""
    page = playground.page
    live = page.eval_on_selector_all("[data-testid=setup] .badge.live[data-field]", "badges => badges.map(b => b.dataset.field)")
    assert sorted(live) == sorted(LIVE_VALUES), live  # the page marks these (from the server's live_fields)
    run_id, step = run.run.run_id, run.run.trainer.global_step
    assert step > 0 and run.recorder.live_record_id is not None
    for field, value in LIVE_VALUES.items():
        field_input = page.locator(f"[data-testid=setup] [name={field}]")
        field_input.fill(value)
        field_input.press("Enter")
        wait_for(lambda: str(getattr(run.run.config, field)) == str(type(getattr(run.run.config, field))(value)),
                 timeout=TIMEOUT_MS / 1000, what=f"{field}={value} applied live on {where}")
        assert run.run.run_id == run_id and run.run.trainer.global_step == step, f"Enter in {field} reset {where}"
        expect(playground.by_id("notice-text")).not_to_contain_text("Reset")
    record = run.recorder.live_record_id
    weights = {k: v.clone() for k, v in run.run.trainer.model.state_dict().items()}
    playground.by_id("train-reset").click()
    wait_for(lambda: run.run.run_id == run_id + 1, timeout=TIMEOUT_MS / 1000, what=f"{where} reset")
    expect(playground.by_id("notice-text")).to_contain_text(f"The previous one is run #{record} in Runs")
    page.click(by_id("notice-restore"))
    wait_for(lambda: run.run.weights_origin == f"restored from run #{record} at step {step}",
             timeout=TIMEOUT_MS / 1000, what=f"run #{record} restored into {where}")
    restored = run.run.trainer.model.state_dict()
    assert all(torch.equal(restored[k], v) for k, v in weights.items())
    return record


def test_enter_in_a_live_field_applies_it_live_on_a_private_and_on_the_shared_run(page, live_server):
    engine = live_server.engine
    playground = PlaygroundPage(page).open(live_server)
    playground.by_id("train-step").click()  # the shared run has a record of its own (step > 0)
    wait_for(lambda: engine.part().recorder.live_record_id is not None, timeout=TIMEOUT_MS / 1000,
             what="the shared run recorded")
    shared_record = engine.part().recorder.live_record_id

    key = playground.train_my_own_copy()
    playground.wait_for_status("running")
    playground.by_id("train-pause").click()
    playground.wait_for_status("paused")
    private = live_server.playground.engine.host_of(key).handle.engine.part(key)  # the engine holding it
    private_record = enter_each_live_field_then_reset_and_restore(playground, private, "the private run")
    assert private_record != shared_record  # the notice named the private run's record, not the shared one's
    assert engine.part().run.weights_origin is None  # the shared run was not touched

    playground.back_to_shared_run()
    wait_for(lambda: playground.step() == engine.part().run.trainer.global_step, timeout=30, what="the shared run shown")
    assert enter_each_live_field_then_reset_and_restore(playground, engine.part(), "the shared run") == shared_record
