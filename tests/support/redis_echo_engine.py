"""An engine process for the Redis bus tests, without torch: it answers `echo` (its id and the
arguments), holds the runs it is told to, and can wait for a lease. Prints `ready` once it takes
commands and `acquired <name>` when it holds a lease; SIGTERM closes it cleanly.

    python -m tests.support.redis_echo_engine REDIS_URL ENGINE_ID [--hold RUN ...] [--lease NAME]
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from server.errors import AccessError
from server.engine.redis_endpoint import EngineEndpoint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("redis_url")
    parser.add_argument("engine_id")
    parser.add_argument("--hold", action="append", default=[])
    parser.add_argument("--lease")
    options = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    endpoint = EngineEndpoint(options.redis_url, options.engine_id)

    def handle(name: str, args: dict):
        if name == "echo":
            return {"engine": options.engine_id, "args": args}
        raise AccessError(f"{options.engine_id} does not know {name}")

    for run in options.hold:
        endpoint.hold(run)
    if options.lease:
        endpoint.lease(options.lease, on_acquired=lambda: print(f"acquired {options.lease}", flush=True))
    endpoint.serve(handle)
    print("ready", flush=True)
    stop.wait()
    endpoint.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
