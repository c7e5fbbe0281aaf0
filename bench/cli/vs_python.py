#!/usr/bin/env python3
"""`ringmaster run` against Python's multiprocessing on the same work, in one run.

The work: N tiny echo jobs read from a JSON Lines file, run on 2 worker processes, one
result line per job written to a JSON Lines file. ringmaster does it with its built-in
`echo` handler; Python with multiprocessing.Pool.imap_unordered over the lines, at
chunksize 1 and at the best of several tuned chunksizes. Every run's output is checked
(one ok line per job id, the right result); a wrong run fails the benchmark (exit 1)
and reports nothing.

    bench/cli/vs_python.py RINGMASTER_BINARY [--jobs N] [--repetitions R]
                           [--out FILE.md] [--json FILE.json]
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def echo_line(line):
    """What a Python worker does per job: parse the job, run it, format the result line."""
    job = json.loads(line)
    payload = job["payload"]
    result = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return json.dumps({"id": job["id"], "status": "ok", "result": result, "attempts": 1})


def python_run(jobs_path, out_path, chunksize):
    start = time.perf_counter()
    with open(jobs_path) as jobs, open(out_path, "w") as out, mp.Pool(2) as pool:
        for line in pool.imap_unordered(echo_line, jobs, chunksize=chunksize):
            out.write(line + "\n")
    return time.perf_counter() - start


def ringmaster_run(binary, config, jobs_path, out_path):
    start = time.perf_counter()
    proc = subprocess.run([binary, "run", config, "--jobs", jobs_path, "--results", out_path, "--no-progress",
                           "--log-level", "warn"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"vs_python: ringmaster exited {proc.returncode}: {proc.stderr[-2000:]}")
    return elapsed


def check(out_path, n, who):
    seen = set()
    with open(out_path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("status") != "ok" or r.get("result") != f"payload-{r['id']}":
                sys.exit(f"vs_python: WRONG RESULT from {who}: {line.strip()} — no figure reported")
            seen.add(r["id"])
    if len(seen) != n:
        sys.exit(f"vs_python: WRONG RESULT from {who}: {len(seen)} distinct ids for {n} jobs — no figure reported")


def write_report(md_lines, md_path, json_path, data):
    """Prints the report and writes it (Markdown) and its data (JSON) where asked."""
    text = "\n".join(md_lines)
    print(text)
    if md_path:
        with open(md_path, "w") as f:
            f.write(text)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(data, f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--json")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ringmaster-vs-python-") as tmp:
        jobs_path = os.path.join(tmp, "jobs.jsonl")
        with open(jobs_path, "w") as f:
            for i in range(a.jobs):
                f.write(json.dumps({"id": str(i), "type": "echo", "payload": f"payload-{i}"}) + "\n")
        config = os.path.join(tmp, "echo.toml")
        with open(config, "w") as f:
            f.write('[pools.echo]\nworkers = 2\n')
        out_path = os.path.join(tmp, "results.jsonl")

        def measure(fn, who):
            times = []
            for _ in range(a.repetitions):
                times.append(fn())
                check(out_path, a.jobs, who)
            return statistics.median(times), min(times), max(times)

        rm = measure(lambda: ringmaster_run(a.binary, config, jobs_path, out_path), "ringmaster")
        py1 = measure(lambda: python_run(jobs_path, out_path, 1), "python chunksize 1")
        tuned = {}
        for cs in (64, 256, 1024, 4096):
            tuned[cs] = measure(lambda cs=cs: python_run(jobs_path, out_path, cs), f"python chunksize {cs}")
        best_cs = min(tuned, key=lambda cs: tuned[cs][0])
        pyt = tuned[best_cs]

    ratio1, ratiot = py1[0] / rm[0], pyt[0] / rm[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    rows = [("ringmaster run (2 workers)", rm), ("multiprocessing, chunksize 1", py1),
            (f"multiprocessing, chunksize {best_cs} (best of 64/256/1024/4096)", pyt)]
    md = [
        "# ringmaster run against Python's multiprocessing",
        "",
        f"- Produced by: `bench/run` (`bench/cli/vs_python.py`); {a.jobs} echo jobs, JSON Lines file to JSON Lines file, "
        f"2 workers, median of {a.repetitions} runs each, every output checked",
        f"- Machine: {os.cpu_count()} cores, CPU \"{cpu}\"; Python {platform.python_version()}",
        "",
        "> Absolute figures from a shared 2-core VM are only indicative; compare the ratios, measured in the same run.",
        "",
        "| Runner | median s | min s | max s | jobs/s (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (med, lo, hi) in rows:
        md.append(f"| {name} | {med:.3f} | {lo:.3f} | {hi:.3f} | {a.jobs / med:,.0f} |")
    md += [
        "",
        "| Target | Measured | Met |",
        "|---|---|---|",
        f"| at least 10× the chunksize-1 pool | {ratio1:.1f}× | {'**yes**' if ratio1 >= 10 else '**no**'} |",
        f"| faster than the tuned pool | {ratiot:.2f}× | {'**yes**' if ratiot > 1 else '**no**'} |",
        "",
    ]
    write_report(md, a.out, a.json,
                 {"schema": "ringmaster-cli-vs-python/1", "jobs": a.jobs, "cores": os.cpu_count(), "cpu": cpu,
                  "ringmaster_s": rm[0], "python_chunksize1_s": py1[0], "python_tuned_s": pyt[0],
                  "python_tuned_chunksize": best_cs, "ratio_vs_chunksize1": ratio1, "ratio_vs_tuned": ratiot})


if __name__ == "__main__":
    main()
