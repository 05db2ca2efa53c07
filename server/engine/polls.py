"""Class polls: the teacher puts a lesson question on every viewer's screen, the viewers answer
on their own devices, the teacher reveals the answer computed from the shared run.

The poll lives here, in the engine, not in a web process: several web processes can then serve
one class (each passes its viewers' answers through). Answers are anonymous: the web tier
passes who answers as opaque keys (a hash of the viewer's secret, a hash of its address: never
shown, never stored beyond the poll) and only the counts per choice leave this module.

One answer per viewer: an answer whose keys share any key with an earlier answer replaces it
(a student who reconnects, reloads or makes up new secrets from one address counts once, with
its latest choice). Who may open, reveal and close is the web tier's check (server/web/polls.py,
the same as the run's controls).

A poll, as published (message topic "poll", run "shared"): {"id", "step", "key", "title",
"question", "choices", "kind", "counts", "answers", "status": "open" | "revealed", "reveal"}; or
None once closed.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from ..errors import UserError

MAX_VOTERS = 10_000  # answers held per poll (a bound on memory whoever sends them)
MAX_VOTER_KEYS = 4  # keys one answer is known by (the viewer, its address)
NO_POLL = "there is no class poll open now"


class PollError(UserError):
    status = 409


class Polls:
    """The one class poll of the shared run (at most one at a time)."""

    def __init__(self, publish: Callable[[Optional[dict]], None], clock=time.monotonic):
        self.publish = publish
        self.clock = clock
        self._lock = threading.Lock()
        self._poll: Optional[dict] = None
        self._votes: dict[int, int] = {}  # answer number -> choice (one per viewer)
        self._answer_of: dict[str, int] = {}  # a voter key -> the answer it gave
        self._keys_of: dict[int, tuple] = {}  # answer number -> its voter keys
        self._next_answer = 1
        self._next_id = 1

    def current(self) -> Optional[dict]:
        with self._lock:
            return self._public()

    def _public(self) -> Optional[dict]:
        if self._poll is None:
            return None
        counts = [0] * len(self._poll["choices"])
        for choice in self._votes.values():
            counts[choice] += 1
        return {**self._poll, "counts": counts, "answers": len(self._votes)}

    def open(self, question: dict) -> dict:
        """A new poll on `question` (lesson.Step.ask's dict plus "step"); one that was open ends."""
        if not question.get("choices"):
            raise PollError(f"step {question.get('step')} asks for a number, not a choice: a poll needs choices "
                            "(ask this one aloud, or poll another step)")
        with self._lock:
            self._poll = {"id": self._next_id, "step": question["step"], "key": question["key"],
                          "title": question["title"], "question": question["question"],
                          "choices": list(question["choices"]), "kind": question["kind"],
                          "view": question.get("view"), "status": "open", "reveal": None,
                          "opened_at": time.time()}
            self._next_id += 1
            self._forget_answers()
            public = self._public()
        self.publish(public)
        return public

    def _forget_answers(self) -> None:
        self._votes, self._answer_of, self._keys_of = {}, {}, {}

    def answer(self, voters, poll_id: int, choice: int) -> dict:
        """`voters`: the keys the answerer is known by (one string: a single key). An earlier
        answer sharing any of them is replaced."""
        keys = (voters,) if isinstance(voters, str) else tuple(dict.fromkeys(voters))
        if not keys or len(keys) > MAX_VOTER_KEYS or not all(isinstance(key, str) and key for key in keys):
            raise PollError(f"an answer needs 1 to {MAX_VOTER_KEYS} voter keys")
        with self._lock:
            poll = self._poll
            if poll is None:
                raise PollError(NO_POLL)
            if poll_id != poll["id"]:
                raise PollError("that poll has ended; answer the one on screen now")
            if poll["status"] != "open":
                raise PollError("the answer has been revealed: this poll takes no more answers")
            if not 0 <= choice < len(poll["choices"]):
                raise PollError(f"choice: this poll has choices 0 to {len(poll['choices']) - 1}, got {choice}")
            earlier = {self._answer_of[key] for key in keys if key in self._answer_of}
            if not earlier and len(self._votes) >= MAX_VOTERS:
                raise PollError(f"this poll has {MAX_VOTERS:,} answers, as many as it takes")
            for number in earlier:  # this viewer's earlier answer(s): the new one replaces them
                del self._votes[number]
                for key in self._keys_of.pop(number):
                    self._answer_of.pop(key, None)
            number, self._next_answer = self._next_answer, self._next_answer + 1
            self._votes[number] = choice
            self._keys_of[number] = keys
            for key in keys:
                self._answer_of[key] = number
            public = self._public()
        self.publish(public)
        return {"poll": poll_id, "choice": choice, "answers": public["answers"], "replaced": bool(earlier)}

    def reveal(self, compute: Callable[[int], dict]) -> dict:
        """`compute(step)` computes the answer from the shared run (outside the lock: it may train)."""
        with self._lock:
            if self._poll is None:
                raise PollError(NO_POLL)
            poll_id, step = self._poll["id"], self._poll["step"]
        answer = compute(step)
        with self._lock:
            if self._poll is None or self._poll["id"] != poll_id:
                raise PollError("the poll was closed or replaced while its answer was computed")
            self._poll = {**self._poll, "status": "revealed", "reveal": answer}
            public = self._public()
        self.publish(public)
        return public

    def close(self) -> dict:
        with self._lock:
            if self._poll is None:
                raise PollError(NO_POLL)
            self._poll = None
            self._forget_answers()
        self.publish(None)
        return {"poll": None}
