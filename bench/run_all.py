"""Every benchmark, one table: `make bench` (or .venv/bin/python bench/run_all.py).

Runs bench/throughput.py, latency.py, bandwidth.py, page.py, load.py and endurance.py with the
settings below, writes each one's JSON to artifacts/bench/, and prints one table: what was
measured, the number, the goal, and whether it was met. The machine is shared and has 2 cores:
each benchmark measures its baseline and its variant in turns within one run, and the table
says how loaded the machine was.

    .venv/bin/python bench/run_all.py [--quick] [--endurance-minutes 3] [--viewers 50] [--only name,...]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import bandwidth, endurance, latency, load, page, throughput  # noqa: E402
from bench.common import emit_json, load_average  # noqa: E402

OUT = REPO / "artifacts" / "bench"
BENCHMARKS = ("throughput", "latency", "bandwidth", "page", "load", "endurance")


def run(name: str, function, **kwargs):
    print(f"== {name} {kwargs}", flush=True)
    started = time.perf_counter()
    try:
        result = function(**kwargs)
    except Exception:
        traceback.print_exc()
        return None
    result["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    emit_json(result, OUT / f"{name}.json")
    return result


def verdict(value: float, goal: float, higher_is_better: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return "met" if (value >= goal if higher_is_better else value < goal) else "NOT met"


def table(results: dict, torch_threads) -> list[tuple[str, str, str, str]]:
    rows = []
    t = results.get("throughput")
    if t:
        rows.append(("training throughput, server with every view streaming / bare PyTorch loop",
                     f"{t['ratio_median']:.2f} ({', '.join(f'{r:.2f}' for r in t['ratios'])}; "
                     f"{t['server_samples_per_second'][-1]:,.0f} vs {t['bare_samples_per_second'][-1]:,.0f} samples/s)",
                     ">= 0.95", verdict(t["ratio_median"], 0.95, True)))
    lat = results.get("latency")
    if lat:
        for key, conditions in lat["variants"].items():
            if "training full speed" not in conditions:  # the floor: idle only
                rows.append((f"predict round trip, idle, median ({key})", f"{conditions['idle']['median_ms']:.2f} ms "
                             f"(p99 {conditions['idle']['p99_ms']:.1f}; 784 pixels "
                             f"{conditions['idle, 784 pixels']['median_ms']:.2f} ms)", "(floor)", "-"))
                continue
            idle = conditions["idle"]
            paced = conditions["training 50 steps/s"]
            full = conditions["training full speed"]
            rows.append((f"predict round trip, idle, median ({key})", f"{idle['median_ms']:.2f} ms "
                         f"(p99 {idle['p99_ms']:.1f})", "< 3 ms", verdict(idle["median_ms"], 3, False)))
            for label, c in (("training 50 steps/s", paced), ("training full speed", full)):
                rows.append((f"predict round trip, {label}, median ({key})", f"{c['median_ms']:.2f} ms",
                             "< 5 ms", verdict(c["median_ms"], 5, False)))
                rows.append((f"predict round trip, {label}, p99 ({key})", f"{c['p99_ms']:.1f} ms",
                             "< 20 ms", verdict(c["p99_ms"], 20, False)))
        for server, c in lat.get("server_cpu_per_prediction", {}).items():
            rows.append((f"server CPU per prediction ({server}; {c['viewers']} viewers drawing, nothing training)",
                         f"{c['cpu_ms_per_prediction']:.2f} ms ({c['predictions']} predictions)", "(measure)", "-"))
    bw = results.get("bandwidth")
    if bw:
        for pace, events in bw["paces"].items():
            total = events["total"]
            parts = ", ".join(f"{e} {row['bytes_per_second'] / 1000:.1f}" for e, row in events.items()
                              if e != "total" and row["bytes_per_second"] >= 500)
            rows.append((f"bytes/s to one viewer, training at {pace} (kB/s by message)",
                         f"{total['bytes_per_second'] / 1000:.0f} kB/s ({total['deflated_bytes_per_second'] / 1000:.0f} "
                         f"deflated): {parts}", "(measure)", "-"))
    p = results.get("page")
    if p:
        for label, row in p["load"].items():
            rows.append((f"page load to first interactive frame, {label}", f"{row['first_interactive_ms']:.0f} ms",
                         "(measure)", "-"))
        for view, row in list(p["render"]["views"].items())[:8]:
            rows.append((f"render per frame: {view}", f"median {row['median_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms "
                         f"at {row['frames_per_second']:.1f}/s", "(measure)", "-"))
        for label, row in p.get("main_thread", {}).items():
            rows.append((f"page main thread at 1440x900, {label}", f"busy {row['busy_share']:.0%}, {row['long_tasks']} long tasks "
                         f"({row['long_task_share']:.1%}, longest {row['longest_task_ms']:.0f} ms), {row['frames_per_second']:.0f} frames/s, "
                         f"p95 {row['frame_p95_ms']:.0f} ms", "top of page: long tasks <= 10%, none > 100 ms; drawing >= 50 frames/s, p95 < 50 ms", "-"))
        frames = p["render"]["animation_frames"]
        rows.append(("page animation frames while training streams", f"{frames['frames_per_second']:.0f}/s, p95 interval "
                     f"{frames['p95_ms']:.0f} ms, {p['render']['long_tasks']} long tasks", "(measure)", "-"))
    ld = results.get("load")
    if ld:
        rows.append((f"load: {ld['viewers']} viewers drawing every 200 ms, predictions answered",
                     f"{ld['predictions_answered']} of ~{ld['predictions_expected']}, {ld['failures']} failed",
                     "all", "met" if ld["failures"] == 0 and ld["predictions_answered"] >= 0.98 * ld["predictions_expected"]
                     else "NOT met"))
        rows.append((f"load: viewers dropped", str(ld["viewers_dropped"]), "0",
                     "met" if ld["viewers_dropped"] == 0 else "NOT met"))
        rows.append((f"load: training throughput with {ld['viewers']} viewers / solo",
                     f"{ld['ratio_median']:.2f} (load generator used {ld['load_generator_cpu_cores']:.2f} cores)",
                     ">= 0.80", verdict(ld["ratio_median"], 0.80, True)))
        rows.append((f"load: predict round trip under load", f"median {ld['predict_ms']['median']:.1f} ms, p99 "
                     f"{ld['predict_ms']['p99']:.0f} ms", "(measure)", "-"))
        gone = ld.get("vanishing_viewers")
        if gone:
            back = gone["seconds_until_threads_back"]
            rows.append(("vanished viewers (sockets killed): server threads back to before",
                         f"{gone['server_threads_before']} -> {gone['with_viewers']} -> {gone['after']} "
                         f"(after {back:.0f} s)" if back is not None else "not within 90 s", "back",
                         "met" if back is not None else "NOT met"))
    e = results.get("endurance")
    if e:
        rows.append((f"endurance {e['minutes']:g} min, 5 viewers: server RSS growth after warm-up",
                     f"{e['server_rss_mb']['growth']:+.1f} MB ({e['server_rss_mb']['after_warmup']:.0f} -> "
                     f"{e['server_rss_mb']['end']:.0f} MB, {e['server_rss_mb']['slope_mb_per_min']:+.2f} MB/min)",
                     "< 50 MB", verdict(e["server_rss_mb"]["growth"], 50, False)))
        rows.append((f"endurance {e['minutes']:g} min: page JS heap after GC",
                     f"{e['page_js_heap_mb']['after_warmup']:.1f} -> {e['page_js_heap_mb']['end']:.1f} MB "
                     f"({e['page_js_heap_mb']['slope_mb_per_min']:+.2f} MB/min), DOM nodes "
                     f"{e['page_dom_nodes']['after_warmup']} -> {e['page_dom_nodes']['end']}", "flat",
                     "met" if abs(e["page_js_heap_mb"]["growth"]) < 5 else "NOT met"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test of the benchmarks)")
    parser.add_argument("--endurance-minutes", type=float, default=3.0)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch threads for the server (default: the server's own default)")
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    quick = args.quick
    started_load = load_average()
    results = {}
    if "throughput" in only:
        results["throughput"] = run("throughput", throughput.measure, rounds=2 if quick else 6,
                                    seconds=4 if quick else 5, torch_threads=args.torch_threads)
    if "latency" in only:
        results["latency"] = run("latency", latency.measure, n=60 if quick else 200,
                                 variants=(("werkzeug", args.torch_threads), ("werkzeug", 2), ("gunicorn", args.torch_threads)))
    if "bandwidth" in only:
        results["bandwidth"] = run("bandwidth", bandwidth.measure, seconds=5 if quick else 10)
    if "page" in only:
        results["page"] = run("page", page.measure, loads=2 if quick else 5, seconds=5 if quick else 10,
                              main_seconds=5 if quick else 20)
    if "load" in only:
        results["load"] = run("load", load.measure, viewers=10 if quick else args.viewers, seconds=5 if quick else 10,
                              rounds=1 if quick else 2, torch_threads=args.torch_threads)
    if "endurance" in only:
        results["endurance"] = run("endurance", endurance.measure, minutes=1 if quick else args.endurance_minutes,
                                   interval=10 if quick else 15, warmup=20 if quick else 60,
                                   torch_threads=args.torch_threads)
    rows = table({k: v for k, v in results.items() if v}, args.torch_threads)
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    print(f"Benchmarks on {REPO.name}: 2 shared CPU cores, no GPU; load average {started_load:.1f} at the start, "
          f"{load_average():.1f} at the end. JSON in {OUT.relative_to(REPO)}/")
    print(f"{'measure':{width}}  {'result':60}  {'goal':9}  verdict")
    for name, value, goal, ok in rows:
        print(f"{name:{width}}  {value:60}  {goal:9}  {ok}")
    (OUT / "table.json").write_text(json.dumps(rows, indent=1))
    failed = [name for name in only if name in BENCHMARKS and not results.get(name)]
    if failed:
        print(f"benchmarks that failed to run: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
