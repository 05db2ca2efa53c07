"""The lesson and the replay, the web side: translation only (the answers are computed in the
engine: server/engine/lesson.py, server/engine/replay.py).

Socket.IO, answered by acknowledgement (docs/protocol.md, "The lesson" and "The run replayed"):
  lesson:steps, lesson:reveal {step, pixels?}, replay:frame {step}, replay:predict {step, pixels}
"""
from __future__ import annotations

from typing import Any, Optional

from flask import Flask
from pydantic import Field

from ..preprocess import preprocess_pixels
from .runs import current_run
from .answers import answered, parse
from .inside import float32_bytes
from .limits import throttle
from .schemas import Strict

MAX_STEP = 50
MAX_TRAINING_STEP = 2**53
# A reveal may run two short real trainings (the learning-rate step); a replay frame is one
# heatmap frame: a person clicks, or drags a scrubber, no faster than this.
REVEALS_PER_SECOND, REVEALS_BURST = 2.0, 6
REPLAY_PER_SECOND, REPLAY_BURST = 20.0, 40


class RevealRequest(Strict):
    step: int = Field(ge=1, le=MAX_STEP)
    pixels: Optional[list[Any]] = Field(None, max_length=784 * 4)


class ReplayRequest(Strict):
    step: int = Field(ge=0, le=MAX_TRAINING_STEP)


class ReplayPredictRequest(Strict):
    step: int = Field(ge=0, le=MAX_TRAINING_STEP)
    pixels: list[Any] = Field(max_length=784 * 4)


def init_app(app: Flask, playground) -> None:
    socketio = playground.socketio

    @socketio.on("lesson:steps")
    @answered
    def on_steps(payload=None):
        return playground.request("lesson:steps", {"run": current_run()})

    @socketio.on("lesson:reveal")
    @answered
    def on_reveal(payload=None):
        throttle("lesson", REVEALS_PER_SECOND, REVEALS_BURST, "lesson:reveal")
        body = parse(RevealRequest, payload)
        args = {"step": body.step, "run": current_run()}
        if body.pixels is not None:
            args["pixels"] = float32_bytes(preprocess_pixels(body.pixels))
        return playground.request("lesson:reveal", args, timeout=30.0)

    @socketio.on("replay:frame")
    @answered
    def on_frame(payload=None):
        throttle("replay", REPLAY_PER_SECOND, REPLAY_BURST, "replay")
        body = parse(ReplayRequest, payload)
        return playground.request("replay:frame", {"step": body.step, "run": current_run()})

    @socketio.on("replay:predict")
    @answered
    def on_predict(payload=None):
        throttle("replay", REPLAY_PER_SECOND, REPLAY_BURST, "replay")
        body = parse(ReplayPredictRequest, payload)
        return playground.request("replay:predict", {"step": body.step, "run": current_run(),
                                                     "pixels": float32_bytes(preprocess_pixels(body.pixels))})
