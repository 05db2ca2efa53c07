"""Issue 12 in Chromium, as a learner and a class use it: a lesson step asks first and shows the
live network's answer only after the learner commits; progress survives a reload; a poll opened
by the teacher's page reaches a second page, whose answer the teacher's count shows; the replay
moved back to the start of a trained run shows the earlier weights and a different prediction."""
from __future__ import annotations

import json

from tests.browser import STRAIGHT_STROKE, TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.helpers import wait_for


def trained(server, steps: int):
    session = server.session
    session.step(steps)
    wait_for(lambda: session.step_count >= steps and session.status == "paused", timeout=120, what=f"{steps} steps")
    return session


def reveal_shown(page) -> bool:
    return page.locator(by_id("lesson-reveal")).is_visible()


def lesson_choices(page):
    return page.locator(f'{by_id("lesson")} {by_id("lesson-choice")}')


def test_a_step_hides_its_answer_until_the_learner_commits_then_shows_the_live_networks_prediction(live_server, page):
    trained(live_server, 60)
    playground = PlaygroundPage(page).open(live_server, "?lesson=6", wait_for=(f'{by_id("lesson")}[data-step="6"]',))
    assert page.locator(by_id("lesson")).is_visible() and page.locator(by_id("lesson-question")).is_visible()
    assert not reveal_shown(page)
    assert page.locator(by_id("probabilities")).get_attribute("class").endswith("lesson-pointed")  # the view it is about

    playground.draw(STRAIGHT_STROKE)
    said = playground.settled_prediction()
    assert not reveal_shown(page)
    guess = (int(said) + 1) % 10  # a wrong guess: the network's answer is shown beside it
    lesson_choices(page).nth(guess).click()
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)

    reveal = page.locator(by_id("lesson-reveal"))
    assert reveal.get_attribute("data-value") == said  # the network's digit is the page's prediction
    assert reveal.get_attribute("data-agrees") == "false"
    assert f"You said: {guess}" in reveal.text_content() and f"The network: {said}" in reveal.text_content()
    assert lesson_choices(page).nth(guess).get_attribute("aria-pressed") == "true"
    playground.screenshot("lesson/step-6-revealed.png")


def test_progress_survives_a_reload_and_each_step_has_its_link(live_server, page):
    playground = PlaygroundPage(page).open(live_server, "?lesson=1", wait_for=(f'{by_id("lesson")}[data-step="1"]',))
    assert not reveal_shown(page)
    lesson_choices(page).nth(1).click()  # (256, 784)
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)
    assert page.locator(by_id("lesson-reveal")).get_attribute("data-agrees") == "true"
    assert page.locator(by_id("explain-shapes")).get_attribute("class").endswith("lesson-pointed")
    page.click(f'{by_id("lesson")} [data-role="next"]')
    page.wait_for_selector(f'{by_id("lesson")}[data-step="2"]', timeout=TIMEOUT_MS)
    assert "lesson=2" in page.url
    page.fill(by_id("lesson-number"), "200960")
    page.click(by_id("lesson-commit"))
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)

    page.goto(live_server.url + "/")  # no ?lesson: the lesson waits behind its button
    playground.open(live_server)
    page.wait_for_selector(by_id("lesson-toggle"), state="visible", timeout=TIMEOUT_MS)
    assert not page.locator(by_id("lesson")).is_visible()
    page.click(by_id("lesson-toggle"))
    page.wait_for_selector(f'{by_id("lesson")}[data-step="2"]', timeout=TIMEOUT_MS)  # where the learner was
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)  # asked again, live
    assert page.input_value(by_id("lesson-number")) == "200960"
    page.click(f'{by_id("lesson")} [data-role="prev"]')
    page.wait_for_selector(f'{by_id("lesson")}[data-step="1"]', timeout=TIMEOUT_MS)
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)
    assert lesson_choices(page).nth(1).get_attribute("aria-pressed") == "true"

    page.goto(live_server.url + "/?lesson=9")
    page.wait_for_selector(f'{by_id("lesson")}[data-step="9"]', timeout=TIMEOUT_MS)
    page.click(f'{by_id("lesson")} [data-role="next"]')  # the last step's next is the summary
    page.wait_for_selector(by_id("lesson-summary"), state="visible", timeout=TIMEOUT_MS)
    assert page.text_content(by_id("lesson-score")).startswith("2 of 2 answered")
    playground.screenshot("lesson/summary.png")


def test_a_poll_opened_by_the_teacher_reaches_a_second_page_whose_answer_the_teacher_counts(browser, live_server):
    with own_page(browser) as teacher_page, own_page(browser) as student_page:
        teacher = PlaygroundPage(teacher_page).open(live_server, "?lesson=1",
                                                    wait_for=(f'{by_id("lesson")}[data-step="1"]',))
        student = PlaygroundPage(student_page).open(live_server)
        assert not student_page.locator(by_id("poll")).is_visible()
        teacher_page.click(by_id("poll-open"))

        student_page.wait_for_selector(by_id("poll"), state="visible", timeout=TIMEOUT_MS)
        assert "hidden.weight" in student_page.text_content(by_id("poll"))
        teacher_page.wait_for_selector(by_id("poll-results"), state="visible", timeout=TIMEOUT_MS)
        assert teacher_page.text_content(by_id("poll-count")) == "0 answers"
        student_page.locator(f'{by_id("poll")} {by_id("lesson-choice")}').nth(1).click()
        teacher_page.wait_for_function(
            f"() => document.querySelector('{by_id('poll-count')}').textContent === '1 answer'", timeout=TIMEOUT_MS)
        # one answer each: the student's page locks its choices once the server took its answer
        # (the teacher's count may come first: it is the same answer's other message)
        student_page.wait_for_function(
            f"() => document.querySelector('{by_id('poll')} {by_id('lesson-choice')}').disabled", timeout=TIMEOUT_MS)
        teacher.screenshot("lesson/poll-teacher.png")

        teacher_page.click(by_id("poll-reveal"))
        student_page.wait_for_function(
            f"() => document.querySelector('{by_id('poll')}').dataset.status === 'revealed'", timeout=TIMEOUT_MS)
        assert "torch.Size([256, 784])" in student_page.text_content(by_id("poll"))
        student.screenshot("lesson/poll-student-revealed.png")
        teacher_page.click(by_id("poll-close"))
        student_page.wait_for_selector(by_id("poll"), state="hidden", timeout=TIMEOUT_MS)


def mosaic_picture(page) -> str:
    return page.evaluate(f"() => document.querySelector('{by_id('hidden-weights')} canvas').toDataURL()")


def test_the_replay_at_the_start_shows_the_earlier_weights_and_a_different_prediction(live_server, page):
    session = trained(live_server, 200)
    live_step = session.step_count
    playground = PlaygroundPage(page).open(live_server)
    mosaic = page.locator(by_id("hidden-weights"))
    mosaic.scroll_into_view_if_needed()
    page.wait_for_selector(f'{by_id("hidden-weights")}[data-step="{live_step}"]', timeout=TIMEOUT_MS)
    live_tiles = mosaic_picture(page)
    playground.draw(STRAIGHT_STROKE)
    live_digit = playground.settled_prediction()
    live_probabilities = playground.probabilities()

    page.locator(by_id("replay")).fill("0")
    page.wait_for_selector(f'{by_id("hidden-weights")}[data-step="0"]', timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => document.querySelector('{by_id('prediction-by')}').textContent.includes('step 0')",
                           timeout=TIMEOUT_MS)
    assert "step 0" in page.text_content(by_id("replay-step"))
    assert mosaic_picture(page) != live_tiles  # the first weights, not the trained ones
    replayed = playground.probabilities()
    assert max(abs(a - b) for a, b in zip(replayed, live_probabilities)) > 0.2
    assert playground.text("prediction") != live_digit
    assert json.loads(page.get_attribute(by_id("loss-chart"), "data-marker") or "null") == 0
    playground.screenshot("lesson/replay-step-0.png")

    page.click(by_id("replay-live"))
    page.wait_for_selector(f'{by_id("hidden-weights")}[data-step="{live_step}"]', timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => document.querySelector('{by_id('prediction')}').textContent === '{live_digit}'",
                           timeout=TIMEOUT_MS)
    assert playground.text("prediction-by") == ""
