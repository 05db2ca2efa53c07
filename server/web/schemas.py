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
