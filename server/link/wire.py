"""Socket.IO events encoded once, where they are made (the engine), and sent as they are to
every viewer (the web tier only adds each viewer's acknowledgement id).

An encoded event is the JSON text of `[event, data]` in which every bytes value is replaced by
Socket.IO's binary placeholder `{"_placeholder": true, "num": k}`, plus the bytes themselves in
order: exactly what python-socketio's `Packet.encode()` produces for a binary event, so clients
cannot tell the difference. JSON has no NaN or infinity: a non-finite number is sent as null.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import fastjson


@dataclass(frozen=True)
class EncodedEvent:
    text: str  # JSON of [event, data with placeholders]
    attachments: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return len(self.text) + sum(len(a) for a in self.attachments)

    def as_dict(self) -> dict:
        return {"text": self.text, "attachments": list(self.attachments)}

    @classmethod
    def from_dict(cls, data: dict) -> "EncodedEvent":
        return cls(data["text"], tuple(data["attachments"]))


def _deconstruct(data, attachments: list):
    if isinstance(data, (bytes, bytearray, memoryview)):
        attachments.append(bytes(data))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, dict):
        return {key: _deconstruct(value, attachments) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(item, attachments) for item in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def encode_event(event: str, data) -> EncodedEvent:
    attachments: list[bytes] = []
    body = _deconstruct([event, data], attachments)
    return EncodedEvent(fastjson.dumps(body), tuple(attachments))


def _reconstruct(data, attachments):
    if isinstance(data, dict):
        if data.get("_placeholder") is True and "num" in data:
            return attachments[data["num"]]
        return {key: _reconstruct(value, attachments) for key, value in data.items()}
    if isinstance(data, list):
        return [_reconstruct(item, attachments) for item in data]
    return data


def decode_event(encoded: EncodedEvent) -> tuple[str, object]:
    """(event, data) back from an encoded event (for clients that are not a real socket)."""
    event, data = _reconstruct(fastjson.loads(encoded.text), list(encoded.attachments))
    return event, data
