"""HTTP routes: the page, vendored front-end libraries, health."""
from __future__ import annotations

from flask import Flask, abort, jsonify, render_template, send_file

from ..session import TrainingSession

SECURITY_HEADERS = {
    # No inline script anywhere; Plotly injects <style> elements, hence style-src 'unsafe-inline'.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def init_app(app: Flask, session: TrainingSession) -> None:
    settings = app.config["SETTINGS"]
    vendor_files = {
        # plotly.js's cartesian bundle (the page's chart types): a third of the full bundle to
        # parse and run on load (bench/page.py compares the two).
        "plotly.min.js": settings.node_modules / "plotly.js-cartesian-dist-min" / "plotly-cartesian.min.js",
        "socket.io.esm.min.js": settings.node_modules / "socket.io-client" / "dist" / "socket.io.esm.min.js",
    }

    @app.after_request
    def add_security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/")
    def index():
        return render_template("index.html")

    @app.get("/vendor/<name>")
    def vendor(name: str):
        path = vendor_files.get(name)  # a fixed table: no user text reaches the filesystem
        if path is None:
            abort(404)
        if not path.exists():
            return (f"{name} is missing: run `make run` (it installs the npm packages)", 500)
        return send_file(path, mimetype="text/javascript", max_age=3600)

    @app.get("/healthz")
    def healthz():
        state = session.state()
        return jsonify({
            "status": "ok",
            "training": state["status"],
            "device": state["device"],
            "dataset": state["dataset"],
            "model": state["model"],
        })
