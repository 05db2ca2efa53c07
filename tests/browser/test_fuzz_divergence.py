"""Bad input that is valid: a learning rate that makes the loss NaN. The run pauses, the page
says what happened and suggests a smaller learning rate, nothing crashes, and a reset with a
smaller rate trains again."""
from __future__ import annotations

import pytest

from tests.support.helpers import REPO

TIMEOUT_MS = 60_000
ARTIFACTS = REPO / "artifacts"


def by_id(testid: str) -> str:
    return f'[data-testid="{testid}"]'


@pytest.mark.browser
def test_the_page_explains_a_diverged_run_and_suggests_a_smaller_learning_rate(page, live_server):
    page.goto(live_server.url)
    page.wait_for_selector(f'{by_id("connection")}[data-state="connected"]', timeout=TIMEOUT_MS)

    # Through the page's own setup form: plain SGD at the largest rate it accepts, leaky ReLU
    # (which, unlike sigmoid, lets the activations grow without bound).
    form = page.locator(by_id("setup"))
    form.locator('select[name="optimizer"]').select_option("sgd")
    form.locator('select[name="activation"]').select_option("leaky_relu")
    form.locator('input[name="lr"]').fill("10")
    page.click(by_id("apply-setup"))
    page.wait_for_function("() => document.querySelector('[data-testid=status]').textContent === 'idle'",
                           timeout=TIMEOUT_MS)
    assert live_server.session.config.lr == 10 and live_server.session.config.optimizer == "sgd"

    page.click(by_id("train-start"))
    notice = page.locator(by_id("notice"))
    notice.wait_for(state="visible", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('[data-testid=status]').textContent === 'paused'",
                           timeout=TIMEOUT_MS)
    text = notice.text_content()
    assert "diverged" in text and "NaN or infinite" in text
    assert "learning rate 10" in text and "Try a smaller learning rate (for example 1)" in text
    assert live_server.session.status == "paused"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "divergence_notice.png"))

    # The way out works: a smaller rate and a reset clear the notice, and it trains again.
    form.locator('input[name="lr"]').fill("0.01")
    page.click(by_id("apply-setup"))
    page.wait_for_function("() => document.querySelector('[data-testid=status]').textContent === 'idle'",
                           timeout=TIMEOUT_MS)
    page.wait_for_selector(f'{by_id("notice")}[hidden]', state="attached", timeout=TIMEOUT_MS)
    assert live_server.session.state()["notice"] is None
    page.click(by_id("train-start"))
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=step-count]').textContent.split(' ')[1]) > 60",
        timeout=TIMEOUT_MS)
    assert live_server.session.state()["notice"] is None
    assert not notice.is_visible(), f"a notice is still shown: {notice.text_content()!r}"
