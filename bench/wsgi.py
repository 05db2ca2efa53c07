"""The playground as a WSGI app for gunicorn's threaded worker, to compare it with Werkzeug
(`python -m server`) in the benchmarks:

    gunicorn --worker-class gthread --workers 1 --threads 100 bench.wsgi:app

Settings come from PLAYGROUND_DATA_DIR, PLAYGROUND_DEVICE and PLAYGROUND_TORCH_THREADS. One worker
only: the shared run lives in this process's memory."""
from __future__ import annotations

import os

from server import create_app
from server.engine.runtime import default_torch_threads

app = create_app({
    "device": os.environ.get("PLAYGROUND_DEVICE", "cpu"),
    **({"data_dir": os.environ["PLAYGROUND_DATA_DIR"]} if "PLAYGROUND_DATA_DIR" in os.environ else {}),
    "torch_threads": int(os.environ.get("PLAYGROUND_TORCH_THREADS") or default_torch_threads()),
})
