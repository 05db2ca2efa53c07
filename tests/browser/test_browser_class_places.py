"""The teacher's view of the private runs on the page (issue 23, item 5): the teacher sees each
student's run (from where, its setup, its memory) and puts one away; the student is told, and
gets its run back from its record with "Back to my own run"; a student never sees the card."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import TIMEOUT_MS, PlaygroundPage, by_id, own_page
from tests.support.helpers import CLASS_TOKEN

pytestmark = pytest.mark.browser

TOKEN = CLASS_TOKEN  # the conftest's class_server


def test_the_teacher_sees_a_students_run_puts_it_away_and_the_student_gets_it_back(browser, class_server):
    with own_page(browser) as teacher_page, own_page(browser) as student_page:
        student_page.context.set_extra_http_headers({"X-Forwarded-For": "203.0.113.44"})  # another machine
        student = PlaygroundPage(student_page).open(class_server)
        student_page.wait_for_function("() => document.body.dataset.access === 'watch'", timeout=TIMEOUT_MS)
        expect(student.by_id("private-runs")).to_be_hidden()  # the teacher's view only
        key = student.train_my_own_copy()
        student.wait_for_status("running")

        teacher = PlaygroundPage(teacher_page).open(class_server)
        teacher.by_id("private-runs-refresh").scroll_into_view_if_needed()
        row = teacher.by_id("private-run-row")
        expect(row).to_have_count(1, timeout=TIMEOUT_MS)
        expect(row.locator(by_id("private-run-whose"))).to_contain_text("from 203.0.113.44 · 1 connection")
        expect(row.locator(by_id("private-run-setup"))).to_contain_text("256 sigmoid")
        expect(row.locator(by_id("private-run-setup"))).to_contain_text(" MB")
        expect(teacher.by_id("private-runs-summary")).to_contain_text("1 private run, holding")
        teacher.screenshot("class/teacher-private-runs-1400.png", locator=teacher_page.locator("#private-runs-card"))

        teacher.by_id(f"put-away-{key}").click()
        expect(teacher.by_id("private-runs-summary")).to_have_text("No private runs now: every place is free.",
                                                                  timeout=TIMEOUT_MS)
        student.wait_for_owner("shared")
        expect(student.by_id("notice-text")).to_contain_text("the teacher put it away")
        expect(student.by_id("notice-text")).to_contain_text('"Back to my own run" gets it back.')
        student.by_id("my-run").click()
        student.wait_for_owner("you")
        assert student.run_key() == key
        expect(student.by_id("notice-text")).to_contain_text("Your run is back from its record")
        expect(student.by_id("status")).to_have_text("paused")
        student.screenshot("class/student-run-back-1400.png")


def test_a_students_recorded_weights_are_offered_to_it_and_the_teacher_not_to_other_students(browser, class_server):
    with own_page(browser) as owner_page, own_page(browser) as other_page, own_page(browser) as teacher_page:
        owner_page.context.set_extra_http_headers({"X-Forwarded-For": "203.0.113.45"})
        other_page.context.set_extra_http_headers({"X-Forwarded-For": "203.0.113.46"})
        owner = PlaygroundPage(owner_page).open(class_server)
        owner.train_my_own_copy()
        owner.wait_for_status("running")
        owner.by_id("train-pause").click()
        owner.wait_for_status("paused")
        key = owner.run_key()
        parts = class_server.playground.engine.host_of(key).handle.engine.part(key)
        record = parts.recorder.live_record_id
        assert record is not None

        def item(page):
            return page.locator(f'{by_id("runs")} li[data-run="{record}"]')

        owner.by_id("runs").scroll_into_view_if_needed()
        expect(item(owner_page)).to_be_visible(timeout=TIMEOUT_MS)
        with owner_page.expect_download(timeout=TIMEOUT_MS) as download:
            owner.by_id(f"run-download-{record}").click()
        assert download.value.suggested_filename.endswith(".pt")
        assert download.value.path().stat().st_size > 100_000  # the 784 -> 256 -> 10 network's weights

        other = PlaygroundPage(other_page).open(class_server)
        other.by_id("runs").scroll_into_view_if_needed()
        expect(item(other_page)).to_be_visible(timeout=TIMEOUT_MS)
        expect(other.by_id(f"run-whose-{record}")).to_have_text("someone's")
        expect(other.by_id(f"run-download-{record}")).to_have_count(0)
        expect(other.by_id(f"run-restore-{record}")).to_have_count(0)
        other.screenshot("class/runs-someone-elses-weights.png", locator=other.by_id("runs"))

        teacher = PlaygroundPage(teacher_page).open(class_server)
        teacher.by_id("runs").scroll_into_view_if_needed()
        expect(teacher.by_id(f"run-download-{record}")).to_be_visible(timeout=TIMEOUT_MS)
