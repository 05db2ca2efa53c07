"""One error type for "refused, in words": every request the playground turns down for a reason
a person can act on raises a `UserError` (or a subclass) whose message says what is wrong and
what to do. The web layer answers it as `{"ok": false, "error": words}` (socket events) or JSON
with `status` (HTTP); anything else is a bug and is logged."""
from __future__ import annotations


class UserError(ValueError):
    """A request refused with a message meant for people; nothing was changed."""

    status = 400  # the HTTP status when it answers an HTTP request

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class AccessError(UserError):
    """A control request from a viewer that may only watch."""

    status = 403


class LimitError(UserError):
    """A request refused by a rate limit."""

    status = 429


class RunError(UserError):
    """A control a training run cannot do now (a finished run stepped, the model changed mid-run)."""

    status = 409


class NotFound(UserError):
    """Something asked for by id that does not exist (a run, a checkpoint)."""

    status = 404


class EngineUnavailable(UserError):
    """The training engine is not reachable right now (restarting, or gone)."""

    status = 503
