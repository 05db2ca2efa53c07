"""Issues 12 and 19 in Chromium, as a learner and a class use it: a lesson step asks first, and
nothing on screen holds its answer until the learner commits (the page's rendered text and the
views that hold it, at 1440x900 and on a phone); then the live network's answer, and the page
points at where it shows, never under the lesson's panel; numbers read as people write them; the
step about training on an untrained run says so, trains it and asks again; the keyboard goes
answer, reveal, Next, and Escape closes; progress survives a reload; a poll opened by the
teacher's page reaches a second page, whose answer the teacher's count shows, and hides the
answer on both screens until revealed; the replay moved back to the start of a trained run shows
the earlier weights and a different prediction."""
from __future__ import annotations

import json

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import STRAIGHT_STROKE, TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.support.helpers import wait_for

SHOTS = Path("/tmp/lesson-a-shots")  # every step's screenshots, asking and answered, to look at
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}

# The page's rendered text (what innerText gives: nothing hidden, nothing veiled), less the choices
# of the lesson and the poll (buttons, and the poll chart's labels): a choice question necessarily
# shows its right choice among the others.
SCREEN_TEXT = """() => {
  let text = document.body.innerText;
  const choices = '[data-testid="lesson"] [data-testid="lesson-choice"], [data-testid="poll"] [data-testid="lesson-choice"], '
    + '[data-testid="poll"] [data-role="chart"]';
  for (const choice of document.querySelectorAll(choices)) {
    text = text.replace(choice.innerText, "");
  }
  return text;
}"""


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

    playground.draw(STRAIGHT_STROKE)
    playground.settled_prediction()  # the page has the network's answer, and does not show it
    assert not reveal_shown(page)
    assert not page.locator(by_id("prediction")).is_visible() and not page.locator(by_id("probabilities")).is_visible()
    assert "lesson-pointed" not in page.get_attribute(by_id("probabilities"), "class")
    lesson_choices(page).nth(0).click()
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)

    said = page.inner_text(by_id("prediction"))  # shown now, and pointed at
    assert page.locator(by_id("probabilities")).is_visible()
    assert page.get_attribute(by_id("probabilities"), "class").endswith("lesson-pointed")
    reveal = page.locator(by_id("lesson-reveal"))
    assert reveal.get_attribute("data-value") == said  # the network's digit is the page's prediction
    assert reveal.get_attribute("data-agrees") == ("true" if said == "0" else "false")
    assert "You said: 0" in reveal.text_content() and f"The network: {said}" in reveal.text_content()
    assert lesson_choices(page).nth(0).get_attribute("aria-pressed") == "true"
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

    page.goto(live_server.url + "/?lesson=10")
    page.wait_for_selector(f'{by_id("lesson")}[data-step="10"]', timeout=TIMEOUT_MS)
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
        # Ask, then show, on every screen: the projected one too, until the teacher reveals.
        for screen in (teacher_page, student_page):
            screen.wait_for_selector(f'{by_id("explain-shapes")}.lesson-veiled', state="attached", timeout=TIMEOUT_MS)
            assert not screen.locator(by_id("explain-shapes")).is_visible()
            assert "(256, 784)" not in screen.evaluate(SCREEN_TEXT)
        teacher_page.wait_for_selector(by_id("poll-results"), state="visible", timeout=TIMEOUT_MS)
        assert teacher_page.text_content(by_id("poll-count")) == "0 answers"
        student_page.locator(f'{by_id("poll")} {by_id("lesson-choice")}').nth(1).click()
        teacher_page.wait_for_function(
            f"() => document.querySelector('{by_id('poll-count')}').textContent === '1 answer'", timeout=TIMEOUT_MS)
        # one answer each: a second click changes the student's answer, never the count (issue 23)
        choices = student_page.locator(f'{by_id("poll")} {by_id("lesson-choice")}')
        expect(choices.nth(1)).to_have_attribute("aria-pressed", "true", timeout=TIMEOUT_MS)
        choices.nth(0).click()
        expect(choices.nth(0)).to_have_attribute("aria-pressed", "true", timeout=TIMEOUT_MS)
        choices.nth(1).click()
        expect(choices.nth(1)).to_have_attribute("aria-pressed", "true", timeout=TIMEOUT_MS)
        wait_for(lambda: live_server.engine.polls.current()["counts"] == [0, 1, 0, 0], what="the last choice counted once")
        teacher_page.wait_for_function(
            f"() => document.querySelector('{by_id('poll-count')}').textContent === '1 answer'", timeout=TIMEOUT_MS)
        teacher.screenshot("lesson/poll-teacher.png")

        teacher_page.click(by_id("poll-reveal"))
        student_page.wait_for_function(
            f"() => document.querySelector('{by_id('poll')}').dataset.status === 'revealed'", timeout=TIMEOUT_MS)
        assert "torch.Size([256, 784])" in student_page.text_content(by_id("poll"))
        for screen in (teacher_page, student_page):
            screen.wait_for_selector(f'{by_id("explain-shapes")}.lesson-pointed', timeout=TIMEOUT_MS)
            assert screen.locator(by_id("explain-shapes")).is_visible()
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


# ---- issue 19: ask, then show; never cover what it points at ------------------------------------------

def box(page, selector):
    return page.locator(selector).first.bounding_box()


def overlap(a, b) -> float:
    """The area two boxes share (0: apart)."""
    width = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    height = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(0.0, width) * max(0.0, height)


def assert_in_sight_and_uncovered(page, testid: str, viewport: dict, what: str):
    """`testid` is on screen (its top inside the window) and the lesson's panel covers none of it."""
    panel, target = box(page, by_id("lesson")), box(page, by_id(testid))
    assert target is not None, f"{what}: {testid} is not shown"
    assert overlap(panel, target) == 0, f"{what}: the lesson covers {testid} ({panel} over {target})"
    assert 0 <= target["y"] < viewport["height"] and target["x"] < viewport["width"], f"{what}: {testid} is off screen: {target}"


def answer_tokens(key: str, said: str, value: str) -> list[str]:
    """What would give the step's answer away, as the page or a person would write it."""
    tokens = [said]
    if key == "weight-shape":
        tokens += ["(256, 784)", "256, 784", "256 × 784", "256×784", "[256, 784]"]
    elif key == "parameter-count":
        total = int(float(value))
        tokens += [f"{total:,}", str(total), f"{total:,}".replace(",", " "), "200,704"]
    elif key == "linear-example":
        tokens += [f"{float(value):.4f}", f"{float(value):.2f}"]
    elif key == "sigmoid":
        tokens += [re.search(r"from \S+ to \S+", said).group(0)]
    elif key == "softmax-trap":
        tokens += [re.search(r"below (\S+)", said).group(1)]
    elif key == "keras":
        tokens += ["layers.Dense", "Dense("]
    elif key == "module":
        tokens += ["Linear(in_features=784", "out_features=256"]
    return tokens


def asked(page) -> dict:
    """The step on screen, as the lesson's panel describes it (its data attributes)."""
    return page.evaluate(f"""() => {{
        const step = document.querySelector('{by_id("lesson")} [data-role="step"]');
        return {{ key: step.dataset.key, kind: step.dataset.kind, view: step.dataset.view,
                 hides: JSON.parse(step.dataset.hides), asksFor: step.dataset.asksFor || null }};
    }}""")


def walk_the_lesson(page, viewport: dict, name: str):
    """Every step as a learner takes it: look (the answer is nowhere on screen, its views veiled,
    nothing outlined, what the step asks for in sight), commit, read the answer (the focus on it,
    the view it points at in sight and uncovered), next."""
    count = int(re.search(r"of (\d+)", page.text_content(f'{by_id("lesson")} [data-role="counter"]')).group(1))
    assert count == 10
    for n in range(1, count + 1):
        page.wait_for_selector(f'{by_id("lesson")}[data-step="{n}"][data-state="asking"]', timeout=TIMEOUT_MS)
        step = asked(page)
        before = page.evaluate(SCREEN_TEXT)
        for testid in step["hides"]:
            assert not page.locator(by_id(testid)).first.is_visible(), f"step {n}: {testid} shows before the answer"
        assert page.locator(".lesson-pointed").count() == 0, f"step {n}: a view is pointed at before the answer"
        if step["asksFor"]:
            assert_in_sight_and_uncovered(page, step["asksFor"], viewport, f"step {n} asking")
        page.screenshot(path=str(SHOTS / f"{name}-step-{n:02d}-asking.png"))

        if step["kind"] == "number":
            page.fill(by_id("lesson-number"), "1")
            page.click(by_id("lesson-commit"))
        else:
            lesson_choices(page).nth(0).click()
        page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)
        said = page.text_content(by_id("lesson-answer")).removeprefix("The network: ").removesuffix(".")
        value = page.get_attribute(by_id("lesson-reveal"), "data-value")
        for token in answer_tokens(step["key"], said, value):
            assert token not in before, f"step {n} ({step['key']}): “{token}” was on screen before the answer"
        assert page.evaluate("() => document.activeElement.dataset.testid") == "lesson-reveal"
        page.wait_for_selector(f'{by_id(step["view"])}.lesson-pointed', timeout=TIMEOUT_MS)
        assert_in_sight_and_uncovered(page, step["view"], viewport, f"step {n} answered")
        for testid in step["hides"]:
            assert "lesson-veiled" not in (page.get_attribute(by_id(testid), "class") or ""), testid
        page.screenshot(path=str(SHOTS / f"{name}-step-{n:02d}-answered.png"))
        if n < count:
            page.click(f'{by_id("lesson")} [data-role="next"]')


@pytest.mark.parametrize("viewport, name", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_no_step_shows_its_answer_before_the_learner_commits_and_the_lesson_never_covers_what_it_points_at(
        live_server, browser, viewport, name):
    trained(live_server, 60)
    SHOTS.mkdir(exist_ok=True)
    with own_page(browser, viewport=viewport, has_touch=viewport is PHONE) as page:
        playground = PlaygroundPage(page).open(live_server, "?lesson=1", wait_for=(f'{by_id("lesson")}[data-step="1"]',))
        page.click(f'{by_id("lesson")} [data-role="restart"]')
        playground.draw(STRAIGHT_STROKE)  # the drawing step's drawing, made before it asks
        playground.settled_prediction()
        walk_the_lesson(page, viewport, name)
        # The Start button, which step 4's reveal may send the learner to, is never under the panel.
        assert overlap(box(page, by_id("lesson")), box(page, by_id("train-start"))) == 0


def commit_number(page, written: str):
    page.fill(by_id("lesson-number"), written)
    page.click(by_id("lesson-commit"))
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)
    return page.locator(by_id("lesson-reveal"))


def test_numbers_read_as_people_write_them_and_bad_ones_are_refused_in_words(live_server, page):
    PlaygroundPage(page).open(live_server, "?lesson=2", wait_for=(f'{by_id("lesson")}[data-step="2"]',))
    for written, read in [("200,960", "200,960"), ("200 960", "200,960"), ("200960", "200,960"),
                          ("784*256+256", "200,960"), ("784 × 256 + 256", "200,960"), ("2e5", "200,000"),
                          ("-0,81", "-0.81")]:
        page.fill(by_id("lesson-number"), written)
        assert page.text_content(by_id("lesson-number-reading")) == f"reads as {read}", written
    page.fill(by_id("lesson-number"), "784 plus 256")
    assert "is not part of a number" in page.text_content(by_id("lesson-number-reading"))
    page.click(by_id("lesson-commit"))  # refused in words; nothing committed
    assert "is not part of a number" in page.text_content(f'{by_id("lesson")} [data-role="error"]')
    assert not reveal_shown(page)

    reveal = commit_number(page, "200,960")  # exactly as the page writes it
    assert reveal.get_attribute("data-agrees") == "true" and "You said: 200,960." in reveal.text_content()
    page.click(by_id("lesson-answer-again"))
    page.wait_for_selector(by_id("lesson-reveal"), state="hidden", timeout=TIMEOUT_MS)
    reveal = commit_number(page, "784*256+256")
    assert reveal.get_attribute("data-agrees") == "true" and "You said: 784*256+256 = 200,960." in reveal.text_content()
    page.click(by_id("lesson-answer-again"))
    reveal = commit_number(page, "2e5")
    assert reveal.get_attribute("data-agrees") == "false" and "You said: 2e5 = 200,000." in reveal.text_content()


def test_the_training_step_on_an_untrained_run_says_so_trains_it_and_asks_again(live_server, page):
    playground = PlaygroundPage(page).open(live_server, "?lesson=4", wait_for=(f'{by_id("lesson")}[data-step="4"]',))
    training = page.locator(by_id("lesson-training"))
    assert "trained only 0 of the 50 steps" in training.text_content()
    lesson_choices(page).nth(3).click()  # "training changes little": it has not trained, so it looks true
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)
    reveal = page.locator(by_id("lesson-reveal"))
    assert reveal.get_attribute("data-agrees") == "not-judged"
    assert "Not judged yet" in reveal.text_content() and "✓" not in reveal.text_content()
    assert page.locator(by_id("lesson-ask-again")).is_disabled()  # until it has trained
    page.screenshot(path=str(SHOTS / "untrained-step-4-not-judged.png"))

    page.click(by_id("lesson-train"))  # presses ▶ Start for the learner
    playground.wait_for_status("running")
    page.wait_for_function(f"() => document.querySelector('{by_id('lesson-training')}').dataset.enough === 'true'",
                           timeout=TIMEOUT_MS)
    page.click(by_id("train-pause"))
    playground.wait_for_status("paused")
    page.click(by_id("lesson-ask-again"))
    page.wait_for_function(f"() => document.querySelector('{by_id('lesson-reveal')}').dataset.agrees !== 'not-judged'",
                           timeout=TIMEOUT_MS)
    assert "Not judged" not in reveal.text_content()
    assert "hidden-weights" in page.evaluate("() => document.querySelector('.lesson-pointed').dataset.testid")
    page.screenshot(path=str(SHOTS / "untrained-step-4-asked-again.png"))

    # The summary shows the newest answer: the network after training, not the step-0 one.
    page.goto(live_server.url + "/?lesson=10")
    page.wait_for_selector(f'{by_id("lesson")}[data-step="10"]', timeout=TIMEOUT_MS)
    page.click(f'{by_id("lesson")} [data-role="next"]')
    page.wait_for_selector(by_id("lesson-summary"), state="visible", timeout=TIMEOUT_MS)
    row = page.locator(by_id("lesson-summary-said")).nth(3)
    page.wait_for_function(f"() => document.querySelectorAll('{by_id('lesson-summary-said')}')[3].textContent.includes('Row')",
                           timeout=TIMEOUT_MS)
    assert "only 0 of" not in row.text_content() and "the network at step 0:" not in row.text_content()


def test_by_keyboard_the_focus_goes_answer_then_reveal_then_next_and_escape_closes(live_server, page):
    PlaygroundPage(page).open(live_server)
    toggle = page.locator(by_id("lesson-toggle"))
    toggle.wait_for(state="visible", timeout=TIMEOUT_MS)
    toggle.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'{by_id("lesson")}[data-step="1"]', timeout=TIMEOUT_MS)
    focused = lambda: page.evaluate(  # noqa: E731
        "() => { const e = document.activeElement; return e.dataset.testid || e.dataset.role || e.tagName; }")
    lesson_choices(page).nth(1).focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)
    assert focused() == "lesson-reveal"
    page.keyboard.press("Tab")
    assert focused() == "next"
    page.keyboard.press("Enter")  # step 2: the focus is on its answer field
    page.wait_for_selector(f'{by_id("lesson")}[data-step="2"]', timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.activeElement.dataset.testid === 'lesson-number'", timeout=TIMEOUT_MS)
    page.keyboard.type("200 960")
    page.keyboard.press("Enter")
    page.wait_for_selector(by_id("lesson-reveal"), state="visible", timeout=TIMEOUT_MS)
    assert focused() == "lesson-reveal" and page.get_attribute(by_id("lesson-reveal"), "data-agrees") == "true"
    page.keyboard.press("Tab")
    assert focused() == "next"
    page.keyboard.press("Escape")
    page.wait_for_selector(by_id("lesson"), state="hidden", timeout=TIMEOUT_MS)
    assert focused() == "lesson-toggle" and toggle.get_attribute("aria-expanded") == "false"
    assert page.locator(".lesson-veiled").count() == 0  # closed: the page shows everything again


def test_an_untrained_network_is_labelled_as_guessing_and_a_trained_one_is_not(live_server, page):
    playground = PlaygroundPage(page).open(live_server)
    playground.draw(STRAIGHT_STROKE)
    playground.settled_prediction()
    assert page.inner_text(by_id("prediction-guessing")) == "Guessing: not trained yet"
    assert page.get_attribute(by_id("prediction-guessing"), "title").startswith("Guessing: this network has not trained yet")
    session = trained(live_server, 60)
    accuracy = session.epochs[-1]["val_accuracy"]
    assert accuracy >= 0.5  # the small set's 60 steps are enough to be right more often than not
    page.wait_for_function(f"() => document.querySelector('{by_id('prediction-guessing')}').textContent === ''",
                           timeout=TIMEOUT_MS)
    assert not page.locator(by_id("prediction-guessing")).is_visible()
