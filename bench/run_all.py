"""Every benchmark, one table: `make bench` (or .venv/bin/python bench/run_all.py).

Runs bench/throughput.py, training_loop.py, latency.py, bandwidth.py, load.py, views.py,
page.py and endurance.py with the settings below, writes each one's JSON to artifacts/bench/,
and prints one table: what was measured, the number, the goal, and whether it was met. The
machine is shared and has 2 cores: each benchmark measures its baseline and its variant in
turns within one run, and the table says how loaded the machine was.

    .venv/bin/python bench/run_all.py [--quick] [--endurance-minutes 3] [--viewers 50] [--only name,...]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import (bandwidth, endurance, latency, load, page, private_runs, redis_latency, throughput,  # noqa: E402
                   training_loop, views)
from bench.common import emit_json, load_average  # noqa: E402

OUT = REPO / "artifacts" / "bench"
BENCHMARKS = ("throughput", "training_loop", "latency", "bandwidth", "load", "views", "page", "private_runs",
              "redis_latency", "endurance")


def run(name: str, function, **kwargs):
    print(f"== {name} {kwargs} (load average {load_average():.1f})", flush=True)
    started = time.perf_counter()
    try:
        result = function(**kwargs)
    except Exception:
        traceback.print_exc()
        return None
    result["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_at_the_end"] = round(load_average(), 2)
    emit_json(result, OUT / f"{name}.json")
    return result


def verdict(value: float, goal: float, higher_is_better: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return "met" if (value >= goal if higher_is_better else value <= goal) else "NOT met"


def kb(value: float) -> str:
    return f"{value / 1000:.1f}"


def table(results: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    t = results.get("throughput")
    if t:
        bare = t["bare_samples_per_second"]
        for name, v in t["viewers"].items():
            rows.append((f"training with one viewer ({name}) / bare PyTorch loop, {t['rounds']} alternating rounds",
                         f"{v['ratio_median']:.2f} ({', '.join(f'{r:.2f}' for r in v['ratios'])}; last "
                         f"{v['server_samples_per_second'][-1]:,.0f} vs {bare[-1]:,.0f} samples/s); per CPU-second "
                         f"{v['per_cpu_second_ratio_median']:.2f}",
                         ">= 0.95", verdict(v["ratio_median"], 0.95, True)))
            web, engine = v["cores"].get("web worker"), v["cores"].get("engine")
            rows.append((f"  cores of the web worker during those phases ({name})",
                         f"{web['median']:.2f} (max {web['max']:.2f}); engine {engine['median']:.2f}",
                         f"<= {t['web_worker_goal_cores']:.2f}", verdict(web["max"], t["web_worker_goal_cores"], False)))
    tl = results.get("training_loop")
    if tl:
        for name, ratio in tl["ratio_to_bare"].items():
            if name != training_loop.BASELINE:
                rate = sorted(tl["samples_per_second"][name])[len(tl["samples_per_second"][name]) // 2]
                rows.append((f"in-process, no web: {name} / bare loop", f"{ratio:.2f} ({rate:,.0f} samples/s)",
                             "(measure)", "-"))
    lat = results.get("latency")
    if lat:
        v = lat["variants"]
        floor, playground = v[latency.FLOOR]["idle"], v[latency.PLAYGROUND]["idle"]
        rows.append(("predict round trip, idle, median (Python client)",
                     f"{playground['median_ms']:.2f} ms (p99 {playground['p99_ms']:.1f}); the floor "
                     f"{floor['median_ms']:.2f} ms (p99 {floor['p99_ms']:.1f}); {lat['idle_median_over_floor']:.2f}x",
                     f"<= {lat['idle_median_goal_ms']:g} ms", verdict(playground["median_ms"], lat["idle_median_goal_ms"], False)))
        for condition in latency.CONDITIONS[1:]:
            c = v[latency.PLAYGROUND][condition]
            rows.append((f"predict round trip, {condition} (Python client)",
                         f"median {c['median_ms']:.2f} ms, p99 {c['p99_ms']:.1f} ms", "(measure)", "-"))
        chromium = v.get(latency.CHROMIUM_CLIENT)
        if chromium:
            rows.append(("predict round trip from Chromium: " + " / ".join(chromium),
                         " / ".join(f"{c['median_ms']:.1f}" for c in chromium.values()) + " ms; p99 " +
                         " / ".join(f"{c['p99_ms']:.1f}" for c in chromium.values()), "(measure)", "-"))
        for server, c in lat.get("cpu_per_prediction", {}).items():
            per = ", ".join(f"{p} {ms:.2f} ms" for p, ms in c["cpu_ms_per_prediction"].items())
            rows.append((f"CPU per prediction, {server} ({c['viewers']} viewers drawing, nothing training)",
                         f"{per} ({c['predictions']} predictions)", "(measure)", "-"))
    bw = results.get("bandwidth")
    if bw:
        for name, windows in bw["viewers"].items():
            goal = bw["goals_bytes_per_second"].get(name)
            for window, events in windows.items():
                if not isinstance(events, dict) or "total" not in events:
                    continue
                total = events["total"]
                parts = ", ".join(f"{e} {kb(row['bytes_per_second'])}" for e, row in events.items()
                                  if e != "total" and row["bytes_per_second"] >= 500)
                rows.append((f"bytes/s to one viewer at {bw['pace']:g} steps/s: {name}, {window}",
                             f"{kb(total['bytes_per_second'])} kB/s ({kb(total['deflated_bytes_per_second'])} deflated): "
                             f"{parts}", f"<= {goal / 1000:g} kB/s" if goal else "(measure)",
                             verdict(total["bytes_per_second"], goal, False) if goal else "-"))
    ld = results.get("load")
    if ld:
        rows.append((f"load: {ld['viewers']} viewers drawing every 200 ms at full speed: predictions answered",
                     f"{ld['predictions_answered']} of {ld['predictions_sent']}, {ld['failures']} failed", "all",
                     "met" if ld["failures"] == 0 and ld["predictions_answered"] == ld["predictions_sent"] else "NOT met"))
        rows.append(("load: viewers dropped", str(ld["viewers_dropped"]), "0", "met" if ld["viewers_dropped"] == 0 else "NOT met"))
        rows.append((f"load: training with {ld['viewers']} viewers drawing / alone",
                     f"{ld['ratio_median']:.2f} ({', '.join(f'{r:.2f}' for r in ld['ratios'])})",
                     f">= {ld['ratio_goal']:.2f}", verdict(ld["ratio_median"], ld["ratio_goal"], True)))
        rows.append(("load: predict round trip with the crowd", f"median {ld['predict_ms']['median']:.1f} ms, p99 "
                     f"{ld['predict_ms']['p99']:.1f} ms", f"p99 <= {ld['p99_goal_ms']:g} ms",
                     verdict(ld["predict_ms"]["p99"], ld["p99_goal_ms"], False)))
        cores = ld["cores_with_crowd"]
        rows.append(("load: cores with the crowd (alone)", ", ".join(
            f"{p} {c:.2f} ({ld['cores_alone'].get(p, float('nan')):.2f})" for p, c in cores.items()), "(measure)", "-"))
        gone = ld.get("vanishing_viewers")
        if gone:
            back = gone["seconds_until_threads_back"]
            rows.append(("vanished viewers (sockets killed): web worker threads back to before",
                         f"{gone['server_threads_before']} -> {gone['with_viewers']} -> {gone['after']} "
                         f"(after {back:.0f} s)" if back is not None else "not within 90 s", "back",
                         "met" if back is not None else "NOT met"))
    vw = results.get("views")
    if vw:
        for name, row in vw["streams"].items():
            if name == views.NOTHING:
                continue
            rows.append((f"one viewer taking only {name}: training / taking nothing",
                         f"{row['ratio_to_nothing']:.2f}; engine {row['cores']['engine']:.2f} cores, web "
                         f"{row['cores']['web worker']:.2f}; {kb(row['bytes_per_second'])} kB/s, "
                         f"{row['frames_per_second']:.1f} frames/s", "(measure)", "-"))
    p = results.get("page")
    if p:
        for label, row in p["pages"].items():
            met = "met" if row["first_interactive_ms"] <= 1000 else "not met"
            rows.append((f"page cold, {label}: first interactive frame", f"{row['first_interactive_ms']:.0f} ms",
                         "<= 1,000 ms", met))
            rows.append((f"page cold, {label}: on the wire", f"{row['kb']:.0f} kB in {row['requests']:.0f} requests",
                         "<= 600 kB", "met" if row["kb"] <= 600 else "not met"))
            reload = row["reload"]
            rows.append((f"page reloaded, {label}", f"{reload['kb']:.1f} kB, {reload['reached_server']:.0f} requests "
                         "reached the server", "<= 60 kB, <= 6 requests",
                         "met" if reload["kb"] <= 60 and reload["reached_server"] <= 6 else "not met"))
        if "joining" in p:
            rows.append(("page cold, joining a run under way: first interactive frame",
                         f"{p['joining']['first_interactive_ms']:.0f} ms", "(measure)", "-"))
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
    pr = results.get("private_runs")
    if pr:
        rows.append((f"{pr['students']} private runs at 50 steps/s beside the shared run at full speed: their steps/s",
                     f"median {pr['private_median']}, min {pr['private_min']}; {pr['private_keeping_pace']} of "
                     f"{pr['students']} keep >= 45", f"{pr['students']} keep >= 45",
                     "met" if pr["private_keeping_pace"] == pr["students"] else "NOT met"))
        rows.append(("  the shared run at full speed beside them / alone", f"{pr['shared_ratio_beside_to_solo']:.2f} "
                     f"({pr['shared_full_speed_beside_samples_per_s']:,} vs {pr['shared_full_speed_solo_samples_per_s']:,} "
                     "samples/s)", "(what is left)", "-"))
        paced = pr["beside_paced_shared"]
        rows.append((f"{pr['students']} private runs beside the shared run at its pace: their steps/s (the shared run's)",
                     f"median {paced['private_median']}, min {paced['private_min']}; {paced['private_keeping_pace']} keep "
                     f">= 45 (shared {paced['shared_steps_per_second']})", f"{pr['students']} keep >= 45",
                     "met" if paced["private_keeping_pace"] == pr["students"] else "NOT met"))
    rl = results.get("redis_latency")
    if rl:
        a, b = rl["one command"], rl["redis, 2 web + 1 engine"]
        rows.append(("a message (train:step -> the state on another viewer): one command / Redis, 2 web + 1 engine",
                     f"median {a['message']['median_ms']} / {b['message']['median_ms']} ms, p99 {a['message']['p99_ms']} / "
                     f"{b['message']['p99_ms']} ms (extra median {rl['extra_message_latency_ms']['median']} ms)",
                     "(measure)", "-"))
        rows.append(("predict round trip on a web process that is not the engine's host (Redis): shared memory / asked of the engine",
                     f"median {b['predict']['median_ms']} / {b['predict_via_engine']['median_ms']} ms, p99 "
                     f"{b['predict']['p99_ms']} / {b['predict_via_engine']['p99_ms']} ms (one command: "
                     f"{a['predict']['median_ms']} ms)", "(measure)", "-"))
        rows.append(("bytes/s to a page-like viewer: Redis / one command", f"{rl['page_bytes_ratio']:.2f} "
                     f"({b['page_bytes_per_s']:,} vs {a['page_bytes_per_s']:,} B/s)", "unchanged (~1)", "-"))
    e = results.get("endurance")
    if e:
        for process in endurance.PROCESSES:
            rss = e[f"{process}_rss_mb"]
            rows.append((f"endurance {e['minutes']:g} min, 5 viewers: {process} RSS growth after warm-up",
                         f"{rss['growth']:+.1f} MB ({rss['after_warmup']:.0f} -> {rss['end']:.0f} MB, "
                         f"{rss['slope_mb_per_min']:+.2f} MB/min)", "< 50 MB", verdict(rss["growth"], 50, False)))
        heap = e["page_js_heap_mb"]
        rows.append((f"endurance {e['minutes']:g} min: page JS heap after GC",
                     f"{heap['after_warmup']:.1f} -> {heap['end']:.1f} MB ({heap['slope_mb_per_min']:+.2f} MB/min), "
                     f"DOM nodes {e['page_dom_nodes']['after_warmup']} -> {e['page_dom_nodes']['end']}", "flat",
                     "met" if abs(heap["growth"]) < 5 else "NOT met"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test of the benchmarks)")
    parser.add_argument("--endurance-minutes", type=float, default=3.0)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch threads for the engine and the bare loop (default: the engine's own default)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated, of {','.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}: choose from {','.join(BENCHMARKS)}")
    quick = args.quick
    threads = args.torch_threads
    started_load = load_average()
    plan = {
        "throughput": lambda: run("throughput", throughput.measure, rounds=2 if quick else 6, seconds=4 if quick else 5,
                                  torch_threads=threads),
        "training_loop": lambda: run("training_loop", training_loop.measure, rounds=1 if quick else 3,
                                     seconds=3 if quick else 4),
        "latency": lambda: run("latency", latency.measure, n=60 if quick else 200, torch_threads=threads),
        "bandwidth": lambda: run("bandwidth", bandwidth.measure, epochs=5 if quick else 20, early_seconds=10),
        "load": lambda: run("load", load.measure, viewers=args.viewers, seconds=5 if quick else 10,
                            rounds=1 if quick else 2, torch_threads=threads),
        "views": lambda: run("views", views.measure, rounds=1 if quick else 2, seconds=3 if quick else 4,
                             torch_threads=threads),
        "page": lambda: run("page", page.measure, loads=2 if quick else 5, seconds=5 if quick else 10,
                            main_seconds=5 if quick else 20),
        "private_runs": lambda: run("private_runs", private_runs.measure, students=10, seconds=8 if quick else 20),
        "redis_latency": lambda: run("redis_latency", redis_latency.measure, n=20 if quick else 100),
        "endurance": lambda: run("endurance", endurance.measure, minutes=1 if quick else args.endurance_minutes,
                                 interval=10 if quick else 15, warmup=20 if quick else 60, torch_threads=threads),
    }
    results = {name: plan[name]() for name in BENCHMARKS if name in only}
    rows = table({k: v for k, v in results.items() if v})
    width = max(len(r[0]) for r in rows) if rows else 10
    print()
    print(f"Benchmarks on {REPO.name}: {os.cpu_count()} CPU cores (shared); load average {started_load:.1f} at the start, "
          f"{load_average():.1f} at the end. JSON in {OUT.relative_to(REPO)}/")
    print(f"{'measure':{width}}  {'result':60}  {'goal':12}  verdict")
    for name, value, goal, ok in rows:
        print(f"{name:{width}}  {value:60}  {goal:12}  {ok}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "table.json").write_text(json.dumps({"load_average_at_the_start": started_load,
                                                "load_average_at_the_end": load_average(), "rows": rows}, indent=1))
    failed = [name for name in BENCHMARKS if name in only and not results.get(name)]
    if failed:
        print(f"benchmarks that failed to run: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
