"""The web tier as a table: the socket events that only relay to an engine command are the rows
of server/web/relays.py RELAYS. The table agrees with the engine's command table, with
docs/protocol.md and with the fuzzers, and every event the server answers is either a row or
one of the few written by hand (their logic is more than a relay)."""
from __future__ import annotations

import re
from collections import Counter

from server.engine.commands import COMMANDS
from server.settings import REPO_ROOT
from server.web.access import NO_TOKEN_MESSAGE
from server.web.relays import RELAYS
from tests.fuzz.test_fuzz_events import VALID, request_events
from tests.app.test_security import remote_viewer, token_app, visible_state  # noqa: F401 (token_app: a fixture)

# What the web tier answers by hand, and why (server/web/relays.py says the same).
HAND_WRITTEN = {
    "predict",  # answered in the connection's own thread, from the weights replica
    "setup:link",  # the web tier alone
    "run:create", "run:watch",  # moving a viewer between runs
    "runs:private",  # every engine's private runs, with this web process's connections (the teacher's)
    "inside:subscribe", "broadcasts:subscribe",  # frame and broadcast delivery
    "watch:open",  # a script's own network: a new run on the engine with room for it
}
PROTOCOL = (REPO_ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")


def documented(event: str) -> bool:
    return re.search(rf"`{re.escape(event)}`", PROTOCOL) is not None


def test_each_event_is_one_row():
    counts = Counter(row.event for row in RELAYS)
    assert [event for event, n in counts.items() if n > 1] == []
    assert not {row.event for row in RELAYS} & HAND_WRITTEN


def test_every_row_relays_to_a_command_the_engine_has():
    unknown = {row.event: row.engine_command for row in RELAYS if row.engine_command not in COMMANDS}
    assert unknown == {}


def test_every_relayed_and_hand_written_event_is_documented_in_the_protocol():
    missing = [event for event in sorted({row.event for row in RELAYS} | HAND_WRITTEN) if not documented(event)]
    assert missing == []


def test_the_fuzzers_try_every_row_with_valid_examples():
    assert sorted(row.event for row in RELAYS if row.event not in VALID) == []


def test_the_server_answers_exactly_the_rows_and_the_hand_written_events(app):
    assert set(request_events(app)) == {row.event for row in RELAYS} | HAND_WRITTEN



def test_the_control_column_is_what_the_server_enforces(token_app):
    """A viewer on another machine without the control token is refused, in words and changing
    nothing, exactly by the rows that need control of the shared run (it watches that run)."""
    session = token_app.extensions["playground"].engine.handle.engine.part().run
    viewer = remote_viewer(token_app)
    refused = set()
    for row in RELAYS:
        before = visible_state(session)
        answer = viewer.emit(row.event, VALID[row.event][0], callback=True)
        if answer == {"ok": False, "error": NO_TOKEN_MESSAGE}:
            refused.add(row.event)
            assert visible_state(session) == before, row.event
    assert refused == {row.event for row in RELAYS if row.control in ("shared", "run")}
    viewer.disconnect()
