"""Shapes of what clients send, checked with pydantic before anything acts on them."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..preprocess import MAX_SIDE


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CanvasImage(Strict):
    width: int = Field(ge=1, le=MAX_SIDE)
    height: int = Field(ge=1, le=MAX_SIDE)
    data: bytes = Field(max_length=MAX_SIDE * MAX_SIDE)


class PredictRequest(Strict):
    pixels: Optional[list[Any]] = Field(None, max_length=784 * 4)
    image: Optional[CanvasImage] = None

    @model_validator(mode="after")
    def _one_input(self):
        if (self.pixels is None) == (self.image is None):
            raise ValueError("send exactly one of 'pixels' (784 numbers) or 'image' (a raw canvas)")
        return self


class ConfigRequest(Strict):
    config: Optional[dict] = None


class StepRequest(Strict):
    batches: int = Field(1, ge=1, le=1000)



class PaceRequest(Strict):
    steps_per_second: Optional[float] = Field(..., gt=0, le=100_000, allow_inf_nan=False)


# ---- the relayed events' requests (server/web/relays.py) -------------------------------------------

MAX_RUN_ID = 2**63 - 1  # SQLite's INTEGER: no other id can name a run
NAME_MAX = 80  # a recorded run's name (the runs store's limit, after spaces are collapsed)
LESSON_STEPS = 50  # more steps than the lesson has: a step past its last is refused by the engine
MAX_TRAINING_STEP = 2**53
TOP_TERMS_MAX = 32  # explain:forward's largest terms


class CellRequest(Strict):  # evaluate:cell: one cell of the confusion matrix
    actual: int = Field(ge=0, le=9)
    predicted: int = Field(ge=0, le=9)


class SamplesRequest(Strict):  # dataset:samples
    offset: int = Field(0, ge=0, le=1_000_000)


class RunRequest(Strict):  # runs:get, runs:delete, runs:restore: a recorded run
    id: int = Field(ge=1, le=MAX_RUN_ID)


class RenameRequest(Strict):
    id: int = Field(ge=1, le=MAX_RUN_ID)
    # Empty and over-long names are refused by the runs store, in its words (after spaces are
    # collapsed); this bound only keeps a huge text off the engine line.
    name: str = Field(max_length=NAME_MAX * 20)


class NeuronRequest(Strict):  # inside:neuron
    index: int = Field(ge=0, le=4095)
    pixels: Optional[list] = Field(None, max_length=784)


class ForwardRequest(Strict):  # explain:forward
    pixels: list[Any] = Field(max_length=784 * 4)  # checked by preprocess_pixels
    layer: str = Field("hidden", max_length=16)
    neuron: Optional[int] = Field(None, ge=0)
    top: int = Field(8, ge=1, le=TOP_TERMS_MAX)


class LessonRevealRequest(Strict):
    step: int = Field(ge=1, le=LESSON_STEPS)
    pixels: Optional[list[Any]] = Field(None, max_length=784 * 4)


class ReplayRequest(Strict):  # replay:frame
    step: int = Field(ge=0, le=MAX_TRAINING_STEP)


class ReplayPredictRequest(Strict):
    step: int = Field(ge=0, le=MAX_TRAINING_STEP)
    pixels: list[Any] = Field(max_length=784 * 4)


class PollOpenRequest(Strict):
    step: int = Field(ge=1, le=LESSON_STEPS)


class PollAnswerRequest(Strict):
    poll: int = Field(ge=1, le=2**53)
    choice: int = Field(ge=0, le=63)


class PollRevealRequest(Strict):
    pixels: Optional[list[Any]] = Field(None, max_length=784 * 4)  # the teacher's drawing, if the step needs one
