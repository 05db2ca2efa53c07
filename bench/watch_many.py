"""Ten scripts watched at once on this machine (issue 20), each training its own model with
`linear_playground.watch` against one `python -m server`, and a page (a Socket.IO viewer on the
run's link) on each run: is every page live? For each page, the `metrics` messages it got over
the window and the longest gap between two of them.

    .venv/bin/python bench/watch_many.py [--scripts 10] [--seconds 20]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import emit_json, machine_note, median, server_process  # noqa: E402
from bench.shared import OrderedClient  # noqa: E402

SCRIPT = '''
import sys, time, torch, torch.nn.functional as F
from torch import nn
from linear_playground import watch
torch.set_num_threads(1)
model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
run = watch(model, sys.argv[1], name="many " + sys.argv[2], wait=120)
print(run.key, flush=True)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    x = torch.rand(64, 784); y = torch.randint(0, 10, (64,))
    loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    run.step(loss=loss.item())
    time.sleep(0.01)
run.close()
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scripts", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO / "client"), "OMP_NUM_THREADS": "1"}
    with server_process() as served:
        url = served[0]
        processes = [subprocess.Popen([sys.executable, "-c", SCRIPT, url, str(i), str(args.seconds + 60)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                     for i in range(args.scripts)]
        try:
            keys = [process.stdout.readline().strip() for process in processes]
            pages, arrivals = [], []
            for key in keys:
                times: list[float] = []
                page = OrderedClient()
                page.on("metrics", lambda payload, times=times: times.append(time.monotonic()))
                page.connect(url, transports=["websocket"], auth={"run": key, "streams": ["weights-delta"]},
                             wait_timeout=30)  # a page: the curves and the tiles' small stream
                pages.append(page)
                arrivals.append(times)
            time.sleep(3.0)  # every page on its run
            for times in arrivals:
                times.clear()
            started = time.monotonic()
            time.sleep(args.seconds)
            ended = time.monotonic()
            rows = []
            for key, times in zip(keys, arrivals):
                seen = [t for t in times if t <= ended]
                edges = [started, *seen, ended]
                rows.append({"run": key, "metrics": len(seen),
                             "longest_gap_s": round(max(b - a for a, b in zip(edges, edges[1:])), 2)})
            for page in pages:
                page.disconnect()
        finally:
            for process in processes:
                process.kill()
                process.wait(30)
    live = all(row["longest_gap_s"] < 2.0 for row in rows)
    print(f"{args.scripts} watched scripts, a page on each, {args.seconds:g} s ({machine_note()}):")
    for row in rows:
        print(f"  {row['run']}: {row['metrics']} metrics messages, longest gap {row['longest_gap_s']} s")
    print(f"  every page live (no gap of 2 s or more): {'yes' if live else 'no'}; median messages per page "
          f"{median([row['metrics'] for row in rows])}")
    emit_json({"pages": rows, "every_page_live": live, "machine": machine_note()}, args.json)


if __name__ == "__main__":
    main()
