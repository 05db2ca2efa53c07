"""A place coming back after its owner leaves (issue 23, item 5).

One `python -m server` (gunicorn, its engine processes) with `--owner-grace G`. N students each
make a private run, train a few steps and close their page (the socket closes); the teacher (a
viewer on this machine: it may control) asks `runs:private` four times a second. Reported: for
each run, the seconds from its owner's socket closing to the run gone from the teacher's list
(paused, recorded and freed: its place back), against the grace period.

    .venv/bin/python bench/place_back.py [--students 3] [--grace 90] [--json out.json]
"""
from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import QUIET, Viewer, checked, close_all, emit_json, machine_note, median, server_process  # noqa: E402

LOOK_EVERY_S = 0.25  # how often the teacher asks for the list


def measure(students: int = 3, grace: float = 90.0, server_args=()) -> dict:
    with server_process(extra_args=["--owner-grace", f"{grace:g}", *server_args]) as served:
        teacher = Viewer(served.url, auth=QUIET)
        owners = [Viewer(served.url, auth={**QUIET, "viewer": secrets.token_urlsafe(18)}) for _ in range(students)]
        keys = []
        for owner in owners:
            keys.append(checked(owner.call("run:create", {"config": {"hidden_sizes": [32]}}, timeout=60))["run"])
            checked(owner.call("train:step", {"batches": 5}, timeout=60))
        left = {}
        for key, owner in zip(keys, owners):
            owner.close()
            left[key] = time.monotonic()
        back: dict[str, float] = {}
        deadline = time.monotonic() + 3 * grace + 30
        while len(back) < len(keys) and time.monotonic() < deadline:
            listed = {run["run"] for run in checked(teacher.call("runs:private", timeout=30))["runs"]}
            now = time.monotonic()
            for key in keys:
                if key not in listed and key not in back:
                    back[key] = now - left[key]
            time.sleep(LOOK_EVERY_S)
        close_all([teacher])
    seconds = sorted(back.values())
    return {"students": students, "grace_s": grace, "freed": len(back),
            "seconds_to_place_back": [round(s, 1) for s in seconds],
            "median_s": round(median(seconds), 1) if seconds else None,
            "max_s": round(max(seconds), 1) if seconds else None, "machine": machine_note()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--grace", type=float, default=90.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--server-arg", action="append", default=[], help="an option for python -m server")
    args = parser.parse_args(argv)
    result = measure(args.students, args.grace, server_args=args.server_arg)
    print(f"{result['freed']}/{result['students']} places back after their owners left (grace {result['grace_s']:g} s): "
          f"{result['seconds_to_place_back']} s (median {result['median_s']}, max {result['max_s']})")
    print(f"  {result['machine']}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
