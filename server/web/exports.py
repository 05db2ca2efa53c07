"""The run's network as files to take away: the self-contained Python (GET /api/export.py), ONNX
(GET /api/export.onnx) and Keras 3 (GET /api/export.keras), each for the shared run or, with
?run=<key>, any run. Translation only: the files are made in the engine (server/engine/exports/).
"""
from __future__ import annotations

import io

from flask import Flask, send_file

from .viewers import current_run

EXPORT_TIMEOUT_S = 120.0  # the biggest network's file is about 57 MB


def attachment(data: bytes, mimetype: str, filename: str):
    """A download that is always the run's now: never cached."""
    response = send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=filename, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask, playground) -> None:
    @app.get("/api/export.py")
    def export_python():
        source = playground.request("export", {"run": current_run()})["source"]
        return attachment(source.encode(), "text/x-python", "nn_linear_playground.py")

    def export_file(kind: str):
        answer = playground.request("export:file", {"run": current_run(), "format": kind}, timeout=EXPORT_TIMEOUT_S)
        return attachment(answer["data"], answer["mimetype"], answer["filename"])

    app.add_url_rule("/api/export.onnx", "export_onnx", lambda: export_file("onnx"), methods=["GET"])
    app.add_url_rule("/api/export.keras", "export_keras", lambda: export_file("keras"), methods=["GET"])
