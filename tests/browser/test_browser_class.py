"""A class that knows where it stands (issue 19, item 5), with a teacher on the server's machine
and students on other machines (as seen through a proxy, without the control token): a student
sees the shared run's controls off with the reason in plain words, and no "watching only" beside
a run of its own; after the teacher reveals a poll each student's page says ✓ or ✗ and the right
answer is marked in the choices and the chart; a student hides the poll; the runs list says whose
each run is and offers Restore and Delete only where they may be used, and the server refuses the
rest in words."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.support.helpers import CLASS_TOKEN, socketio_client, wait_for

pytestmark = pytest.mark.browser

TOKEN = CLASS_TOKEN  # the conftest's class_server
REMOTE = {"X-Forwarded-For": "203.0.113.9"}  # TEST-NET-3: another machine, as a proxy says
SHARED_CONTROLS = ("train-start", "train-pause", "train-step", "train-reset", "speed", "apply-setup")
STEP_1_RIGHT = 1  # step 1's choices: (784, 256), (256, 784), (256,), (784,); the weight is (256, 784)


def open_as_student(page, server, query: str = "", address: str = REMOTE["X-Forwarded-For"]) -> PlaygroundPage:
    page.context.set_extra_http_headers({"X-Forwarded-For": address})  # each student its own machine
    student = PlaygroundPage(page).open(server, query)
    page.wait_for_function("() => document.body.dataset.access === 'watch'", timeout=TIMEOUT_MS)
    return student


def poll_choice(page, index: int):
    return page.locator(f'{by_id("poll")} {by_id("lesson-choice")}').nth(index)


def test_a_student_sees_the_shared_runs_controls_off_in_plain_words_and_no_watching_only_on_its_own_run(
        browser, class_server):
    with own_page(browser) as student_page:
        student = open_as_student(student_page, class_server)
        for control in SHARED_CONTROLS:
            expect(student.by_id(control)).to_be_disabled()
        reason = student.by_id("read-only-reason")
        expect(reason).to_be_visible()
        expect(reason).to_contain_text("The shared run is the teacher's")
        expect(reason).to_contain_text("Train my own copy")
        for words in (reason.text_content(), student.by_id("train-start").get_attribute("title"),
                      student.by_id("access").get_attribute("title")):
            assert "token" not in words.lower(), words  # no jargon for students
        expect(student.by_id("access")).to_have_text("watching only")
        student.screenshot("class/student-shared-run-1400.png")
        student_page.locator("body").click(position={"x": 5, "y": 300})
        student_page.keyboard.press("s")  # the keys say the same plain words
        expect(student.by_id("notice-text")).to_contain_text("The shared run is the teacher's")
        assert class_server.session.step_count == 0

        # A run of its own: its controls work, and nothing says "watching only" beside "your own run".
        student.train_my_own_copy()
        student.wait_for_status("running")
        expect(student.by_id("run-badge")).to_have_text("your own run")
        expect(student.by_id("access")).to_be_hidden()
        expect(student.by_id("read-only-reason")).to_be_hidden()
        expect(student.by_id("train-pause")).to_be_enabled()
        student.by_id("train-pause").click()
        student.wait_for_status("paused")
        student.screenshot("class/student-own-run-1400.png")
        student.back_to_shared_run()
        expect(student.by_id("access")).to_have_text("watching only")
        expect(student.by_id("train-step")).to_be_disabled()


def test_after_the_reveal_each_student_sees_right_or_wrong_and_the_right_answer_marked_and_may_hide_the_poll(
        browser, class_server):
    phone = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
    with own_page(browser) as teacher_page, own_page(browser, **phone) as right_page, \
            own_page(browser) as wrong_page:
        PlaygroundPage(teacher_page).open(class_server, "?lesson=1", wait_for=(f'{by_id("lesson")}[data-step="1"]',))
        students = {STEP_1_RIGHT: open_as_student(right_page, class_server), 0: open_as_student(wrong_page, class_server, address="203.0.113.10")}
        teacher_page.click(by_id("poll-open"))
        for choice, student in students.items():
            student.page.wait_for_selector(by_id("poll"), state="visible", timeout=TIMEOUT_MS)
            poll_choice(student.page, choice).click()
        teacher_page.wait_for_function(
            f"() => document.querySelector('{by_id('poll-count')}').textContent === '2 answers'", timeout=TIMEOUT_MS)
        teacher_page.click(by_id("poll-reveal"))

        for choice, student in students.items():
            page = student.page
            page.wait_for_function(f"() => document.querySelector('{by_id('poll')}').dataset.status === 'revealed'",
                                   timeout=TIMEOUT_MS)
            you = page.locator(f'{by_id("poll")} [data-role="you"]')
            if choice == STEP_1_RIGHT:
                expect(you).to_have_text("✓ Right: you chose “(256, 784)”.")
            else:
                expect(you).to_have_text("✗ Not this time: you chose “(784, 256)”; the answer is “(256, 784)”.")
                expect(poll_choice(page, choice)).to_have_text("✗ (784, 256)")
            # The right answer is marked in the choices and in the chart, in words as well as colour.
            expect(poll_choice(page, STEP_1_RIGHT)).to_have_text("✓ (256, 784)")
            chart = page.locator(f'{by_id("poll")} [data-role="chart"]')
            expect(chart).to_have_attribute("data-right", str(STEP_1_RIGHT))
            labels = page.evaluate(f"() => document.querySelector('{by_id('poll')} [data-role=chart]').data[0].y")
            assert [label.startswith("✓") for label in labels] == [i == STEP_1_RIGHT for i in range(4)], labels
            ticks = page.locator(f'{by_id("poll")} .ytick text')  # what the chart draws
            expect(ticks.filter(has_text="✓")).to_have_text(["✓ 2. (256, 784)"])
        students[STEP_1_RIGHT].screenshot("class/poll-revealed-right-390.png")
        students[0].screenshot("class/poll-revealed-wrong-1400.png")

        # Each student may hide the poll on their own screen (a button, or Escape): the others keep it.
        students[STEP_1_RIGHT].by_id("poll-dismiss").click()
        right_page.wait_for_selector(by_id("poll"), state="hidden", timeout=TIMEOUT_MS)
        wrong_page.click(f'{by_id("poll")} [data-role="question"]')  # the poll has the keyboard
        wrong_page.keyboard.press("Escape")
        wrong_page.wait_for_selector(by_id("poll"), state="hidden", timeout=TIMEOUT_MS)
        expect(teacher_page.locator(by_id("poll"))).to_be_visible()
        # A new poll comes back on every screen.
        teacher_page.click(by_id("poll-open"))
        right_page.wait_for_selector(by_id("poll"), state="visible", timeout=TIMEOUT_MS)
        expect(poll_choice(right_page, STEP_1_RIGHT)).to_have_text("(256, 784)")  # not judged yet


def test_the_runs_list_says_whose_each_run_is_and_offers_changes_only_on_runs_one_may_change(browser, class_server):
    engine = class_server.engine
    teacher_client = socketio_client(class_server.url)
    assert teacher_client.call("train:step", {"batches": 2}, timeout=30)["ok"]  # the shared run is recorded
    wait_for(lambda: engine.part().recorder.live_record_id is not None, what="the shared run recorded")
    shared_record = engine.part().recorder.live_record_id
    try:
        with own_page(browser) as student_page, own_page(browser) as teacher_page:
            student = open_as_student(student_page, class_server)
            key = student.train_my_own_copy()
            student.wait_for_status("running")
            student.by_id("train-pause").click()
            student.wait_for_status("paused")
            private = class_server.playground.engine.host_of(key).handle.engine.part(key)
            wait_for(lambda: private.recorder.live_record_id is not None, what="the student's run recorded")
            own_record = private.recorder.live_record_id

            def item(page, record):
                return page.locator(f'{by_id("runs")} li[data-run="{record}"]')

            # The student, on its own run: its record is "yours" with Restore and Delete; the shared
            # run's record is "the shared run", restorable into its own run, not deletable.
            student.by_id("runs").scroll_into_view_if_needed()
            expect(item(student_page, own_record)).to_be_visible(timeout=TIMEOUT_MS)
            expect(student.by_id(f"run-whose-{own_record}")).to_have_text("yours")
            expect(student.by_id(f"run-whose-{shared_record}")).to_have_text("the shared run")
            expect(student.by_id(f"run-delete-{own_record}")).to_be_visible()
            expect(student.by_id(f"run-delete-{shared_record}")).to_have_count(0)
            expect(student.by_id(f"run-restore-{shared_record}")).to_be_visible()
            expect(student.by_id(f"run-name-{shared_record}")).not_to_be_editable()
            student.screenshot("class/runs-student-own-run.png", locator=student.by_id("runs"))

            # On the shared run, which it may not change: no Restore anywhere.
            student.back_to_shared_run()
            student.by_id("runs").scroll_into_view_if_needed()
            expect(item(student_page, own_record)).to_be_visible(timeout=TIMEOUT_MS)
            expect(student_page.locator('[data-testid^="run-restore-"]')).to_have_count(0)
            expect(student.by_id(f"run-delete-{own_record}")).to_be_visible()

            # The teacher sees the student's run as someone's, and may delete any.
            teacher = PlaygroundPage(teacher_page).open(class_server)
            teacher.by_id("runs").scroll_into_view_if_needed()
            expect(teacher.by_id(f"run-whose-{own_record}")).to_have_text("someone's", timeout=TIMEOUT_MS)
            expect(teacher.by_id(f"run-whose-{shared_record}")).to_have_text("the shared run")
            expect(teacher.by_id(f"run-delete-{own_record}")).to_be_visible()
            expect(teacher.by_id(f"run-delete-{shared_record}")).to_be_visible()

            # The server refuses in words what the page does not offer: another student, and the
            # student itself on the shared run's record; the student deletes its own.
            secret = student_page.evaluate("() => localStorage.getItem('playground.viewer')")
            other = socketio_client(class_server.url, headers=REMOTE, auth={"viewer": "another-student-secret-0123"})
            same = socketio_client(class_server.url, headers=REMOTE, auth={"viewer": secret})
            try:
                refused = other.call("runs:delete", {"id": own_record}, timeout=10)
                assert refused == {"ok": False, "error": f"run #{own_record} is someone else's: only its owner or the "
                                   "teacher can rename or delete it. You can rename and delete the runs of your own run."}
                refused = same.call("runs:rename", {"id": shared_record, "name": "mine now"}, timeout=10)
                assert not refused["ok"] and refused["error"].startswith(
                    f"run #{shared_record} is the shared run's: only the teacher can rename or delete it")
                assert engine.store.get(shared_record, curves=False)["name"] != "mine now"
                assert engine.store.get(own_record, curves=False)["id"] == own_record  # still there
                assert same.call("runs:rename", {"id": own_record, "name": "my first try"}, timeout=10)["ok"]
                student.by_id(f"run-delete-{own_record}").click()
                student.by_id(f"run-delete-{own_record}").click()  # the second click confirms
                expect(item(student_page, own_record)).to_have_count(0, timeout=TIMEOUT_MS)
            finally:
                other.disconnect()
                same.disconnect()
    finally:
        teacher_client.disconnect()
