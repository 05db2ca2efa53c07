"""Ten private runs at the default pace beside the shared run at full speed (issue 11).

One `python -m server` (two engine processes: the shared run's, and one for private runs).
Phases, side by side in one run:
  1. solo: the shared run at full speed alone, nobody else training;
  2. crowd: the shared run at full speed, and N students' private runs (each its own viewer,
     run:create then train:start at the default pace of 50 steps/s);
  3. the same crowd beside the shared run at its default pace;
Reported: each private run's steps per second (from its own metrics), how many keep >= 45 of
their 50, and the shared run's full-speed throughput in the crowd as a ratio to solo.

    .venv/bin/python bench/private_runs.py [--students 10] [--seconds 20] [--json out.json]
"""
from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (DEFAULT_PACE, QUIET, Viewer, checked, close_all, emit_json, machine_note,  # noqa: E402
                          median, server_process, start_run, throughput_from_metrics)

KEEPS_PACE = 45.0  # steps/s: a paced run "keeps its pace" at or above this (of 50)


def steps_per_second(viewer: Viewer, since: float, until: float) -> float:
    with viewer.lock:
        points = [(t, m["step"]) for t, m in viewer.metrics if since <= t <= until]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return float("nan")
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def measure(students: int = 10, seconds: float = 20.0, warmup: float = 5.0, server_args=()) -> dict:
    with server_process(extra_args=list(server_args)) as served:
        teacher = Viewer(served.url, auth=QUIET)
        start_run(teacher)  # full speed
        time.sleep(warmup)
        t0 = time.perf_counter()
        time.sleep(seconds)
        solo = throughput_from_metrics(teacher, t0, time.perf_counter())

        crowd = [Viewer(served.url, auth={**QUIET, "viewer": secrets.token_urlsafe(18)}) for _ in range(students)]
        for student in crowd:
            checked(student.call("run:create", {"config": {"epochs": 200}}, timeout=60))
            checked(student.call("train:start", {"config": {"steps_per_second": DEFAULT_PACE}}))
        time.sleep(warmup)
        t0 = time.perf_counter()
        time.sleep(seconds)
        t1 = time.perf_counter()
        beside = throughput_from_metrics(teacher, t0, t1)
        paces = [steps_per_second(student, t0, t1) for student in crowd]
        # the same crowd beside the shared run at its default pace (a fresh run: the first may be done)
        start_run(teacher, steps_per_second=DEFAULT_PACE)
        time.sleep(warmup)
        t0 = time.perf_counter()
        time.sleep(seconds)
        t1 = time.perf_counter()
        paced_paces = [steps_per_second(student, t0, t1) for student in crowd]
        shared_paced = steps_per_second(teacher, t0, t1)
        close_all(crowd + [teacher])
    return {
        "beside_paced_shared": {"private_median": round(median(paced_paces), 1),
                                "private_min": round(min(paced_paces), 1),
                                "private_keeping_pace": sum(p >= KEEPS_PACE for p in paced_paces),
                                "shared_steps_per_second": round(shared_paced, 1)},
        "students": students, "seconds": seconds,
        "private_steps_per_second": [round(p, 1) for p in paces],
        "private_median": round(median(paces), 1), "private_min": round(min(paces), 1),
        "private_keeping_pace": sum(p >= KEEPS_PACE for p in paces),
        "shared_full_speed_solo_samples_per_s": round(solo),
        "shared_full_speed_beside_samples_per_s": round(beside),
        "shared_ratio_beside_to_solo": round(beside / solo, 2),
        "machine": machine_note(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--server-arg", action="append", default=[], help="an option for python -m server, e.g. --engines=3")
    args = parser.parse_args(argv)
    result = measure(args.students, args.seconds, server_args=args.server_arg)
    print(f"{result['students']} private runs at {DEFAULT_PACE:g} steps/s beside the shared run at full speed:")
    print(f"  private runs' steps/s: median {result['private_median']}, min {result['private_min']}, "
          f"{result['private_keeping_pace']}/{result['students']} keep >= {KEEPS_PACE:g}")
    print(f"  shared run at full speed: {result['shared_full_speed_beside_samples_per_s']} samples/s beside them vs "
          f"{result['shared_full_speed_solo_samples_per_s']} alone (ratio {result['shared_ratio_beside_to_solo']})")
    paced = result["beside_paced_shared"]
    print(f"beside the shared run at its default pace ({paced['shared_steps_per_second']} steps/s): private runs' "
          f"median {paced['private_median']}, min {paced['private_min']}, {paced['private_keeping_pace']}/"
          f"{result['students']} keep >= {KEEPS_PACE:g}")
    print(f"  {result['machine']}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
