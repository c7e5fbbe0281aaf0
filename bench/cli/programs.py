#!/usr/bin/env python3
"""A user's own programs as ringmaster's workers (protocol jsonl, exec; the C ABI),
against the peers a user would reach for instead, in one run:

1. jsonl: N tiny echo jobs, JSON Lines file to file, 2 workers, each a six-line Python
   loop over sys.stdin, against multiprocessing.Pool.imap_unordered running the same
   per-job Python (parse the line, echo the payload, format the result) at chunksize 1
   and at the best of several chunksizes (vs_python.py's peer).
2. exec: 2,000 one-process-per-job commands (`echo {}`, `true`), 2 at a time, against
   GNU parallel -j2 running the same commands.
3. The C ABI: tiny echo jobs through the embedding API to 2 workers that are a C program
   on ringmaster/worker.h, against the same on a C++ worker on ringmaster::serve() (and,
   for reference, forked workers running the handler in the supervisor's own program).
4. 1 ms jobs in a jsonl Python worker, 1 worker: the time ringmaster adds per job,
   against the same program fed the same request lines from a file by its shell.

Every result of every run is checked; a wrong one fails the benchmark (exit 1) and
reports nothing.

    bench/cli/programs.py --ringmaster BIN --pool-bench BIN --c-worker BIN [--quick]
                          [--out FILE.md] [--json FILE.json] [--headline FILE.md]
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vs_python import check, python_run, write_report  # noqa: E402  (the Pool peer, the check, the output)

PY = "/usr/bin/python3"  # Debian's: the reference interpreter for the worker programs

ECHO_WORKER = """import json, sys
for line in sys.stdin:
    job = json.loads(line)
    print(json.dumps({"result": job["payload"]}), flush=True)
"""

# A job of a fixed amount of work (not a fixed wall time: CPU taken from it shows).
WORK = """def work(k):
    n = 0
    for i in range(k):
        n += i
    return n
"""
SPIN_WORKER = "import json, sys\n" + WORK + """for line in sys.stdin:
    job = json.loads(line)
    print(json.dumps({"result": str(work(job["payload"]["iters"]))}), flush=True)
"""


def fail(why):
    sys.exit(f"programs: WRONG RESULT: {why} — no figure reported")


def timed(argv, **kw):
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        fail(f"{' '.join(argv[:3])}... exited {proc.returncode}: {proc.stderr[-2000:]}")
    return elapsed, proc


def ringmaster_run(binary, config, jobs, results):
    return timed([binary, "run", config, "--jobs", jobs, "--results", results, "--no-progress", "--log-level", "warn"])[0]


def median_of(reps, fn):
    times = [fn() for _ in range(reps)]
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def write_jobs(path, n, payload):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": str(i), "type": "job", "payload": payload(i)}) + "\n")


def check_results(path, n, expected, who):
    seen = set()
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("status") != "ok" or r.get("result") != expected(r["id"]):
                fail(f"{who}: {line.strip()}")
            seen.add(r["id"])
    if len(seen) != n:
        fail(f"{who}: {len(seen)} distinct ids for {n} jobs")


def jsonl_vs_pool(a, tmp):
    n = a.jobs
    jobs = os.path.join(tmp, "echo.jsonl")
    with open(jobs, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": str(i), "type": "echo", "payload": f"payload-{i}"}) + "\n")
    worker = os.path.join(tmp, "echo_worker.py")
    with open(worker, "w") as f:
        f.write(ECHO_WORKER)
    config = os.path.join(tmp, "jsonl.toml")
    with open(config, "w") as f:
        f.write(f'[pools.py]\ncommand = ["{PY}", "{worker}"]\nprotocol = "jsonl"\nworkers = 2\n')
    out = os.path.join(tmp, "results.jsonl")

    def rm():
        t = ringmaster_run(a.ringmaster, config, jobs, out)
        check(out, n, "ringmaster jsonl")
        return t

    def pool(cs):
        t = python_run(jobs, out, cs)
        check(out, n, f"Pool chunksize {cs}")
        return t

    r = {"jobs": n, "ringmaster_jsonl": median_of(a.reps, rm), "pool_chunksize1": median_of(a.reps, lambda: pool(1))}
    tuned = {cs: median_of(a.reps, lambda cs=cs: pool(cs)) for cs in (64, 256, 1024, 4096)}
    best = min(tuned, key=lambda cs: tuned[cs]["median"])
    r["pool_tuned"], r["pool_tuned_chunksize"] = tuned[best], best
    r["ratio_vs_chunksize1"] = r["pool_chunksize1"]["median"] / r["ringmaster_jsonl"]["median"]
    r["ratio_vs_tuned"] = r["pool_tuned"]["median"] / r["ringmaster_jsonl"]["median"]
    return r


def exec_vs_parallel(a, tmp):
    n = a.exec_jobs
    jobs = os.path.join(tmp, "exec.jsonl")
    write_jobs(jobs, n, lambda i: f"p{i}")
    args = os.path.join(tmp, "args.txt")
    with open(args, "w") as f:
        f.write("".join(f"p{i}\n" for i in range(n)))
    out = os.path.join(tmp, "exec-results.jsonl")
    rows = {}
    for name, command, expected in (("echo {}", ["echo", "{}"], lambda i: f"p{i}"), ("true", ["true"], lambda i: "")):
        config = os.path.join(tmp, "exec.toml")
        with open(config, "w") as f:
            f.write(f"[pools.x]\ncommand = {json.dumps(command)}\nprotocol = \"exec\"\nworkers = 2\n")

        def rm():
            t = ringmaster_run(a.ringmaster, config, jobs, out)
            check_results(out, n, lambda id: expected(int(id)), f"ringmaster exec {name}")
            return t

        def gnu():
            t, proc = timed(["parallel", "-j2", *command, "::::", args])
            got = sorted(proc.stdout.split("\n")[:-1]) if proc.stdout else []
            want = sorted(x for x in (expected(i) for i in range(n)) if x)
            if got != want:
                fail(f"GNU parallel {name}: {len(got)} output lines, {len(want)} expected")
            return t

        rm_t, gnu_t = median_of(a.reps, rm), median_of(a.reps, gnu)
        rows[name] = {"ringmaster": rm_t, "parallel": gnu_t, "ratio": gnu_t["median"] / rm_t["median"]}
    return {"jobs": n, "commands": rows}


def c_abi_vs_serve(a):
    n = a.abi_jobs
    peers = {"c_abi": a.c_worker, "serve": a.pool_bench, "forked": ""}
    times = {k: [] for k in peers}
    for _ in range(a.reps + 2):  # interleaved: a slow moment of the machine hits all alike
        for name, command in peers.items():
            argv = [a.pool_bench, "throughput", "--peer", "ringmaster", "--type", "echo", "--workers", "2",
                    "--jobs", str(n)]
            if command:
                argv += ["--command", command]
            _, proc = timed(argv)
            times[name].append(json.loads(proc.stdout)["seconds"])
    r = {"jobs": n}
    for name, ts in times.items():
        r[name] = {"median": statistics.median(ts), "min": min(ts), "max": max(ts), "jobs_per_s": n / statistics.median(ts)}
    r["ratio_c_to_serve"] = r["c_abi"]["jobs_per_s"] / r["serve"]["jobs_per_s"]
    return r


def overhead_1ms(a, tmp):
    worker = os.path.join(tmp, "spin_worker.py")
    with open(worker, "w") as f:
        f.write(SPIN_WORKER)
    # Calibrate: iterations of the worker's own function that take about 1 ms here.
    scope = {}
    exec(WORK, scope)
    iters = 20000
    for _ in range(5):
        t0 = time.perf_counter()
        scope["work"](iters)
        iters = max(1000, int(iters * 0.001 / (time.perf_counter() - t0)))
    n = a.spin_jobs
    expected = str(sum(range(iters)))
    jobs = os.path.join(tmp, "spin.jsonl")
    write_jobs(jobs, n, lambda i: {"iters": iters})
    requests = os.path.join(tmp, "spin-requests.jsonl")  # what the adapter writes, made up front
    with open(requests, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": str(i), "type": "job", "payload": {"iters": iters}}) + "\n")
    config = os.path.join(tmp, "spin.toml")
    with open(config, "w") as f:
        f.write(f'[pools.py]\ncommand = ["{PY}", "{worker}"]\nprotocol = "jsonl"\nworkers = 1\n')
    out = os.path.join(tmp, "spin-results.jsonl")

    def rm():
        t = ringmaster_run(a.ringmaster, config, jobs, out)
        check_results(out, n, lambda id: expected, "ringmaster 1 ms jobs")
        return t

    def direct():
        with open(requests) as stdin:
            t, proc = timed([PY, worker], stdin=stdin)
        lines = proc.stdout.splitlines()
        if len(lines) != n or any(json.loads(l)["result"] != expected for l in lines):
            fail("the 1 ms worker run directly")
        return t

    def startup():  # the program with no job: Python's start, to take out of the job's time
        return timed([PY, worker], stdin=subprocess.DEVNULL)[0]

    rm_ts, direct_ts, start_ts = [], [], []
    for _ in range(a.reps + 2):  # interleaved: a slow moment of the machine hits both alike
        rm_ts.append(rm())
        direct_ts.append(direct())
        start_ts.append(startup())
    rm_m, direct_m, start_m = (statistics.median(x) for x in (rm_ts, direct_ts, start_ts))
    per_job_direct = (direct_m - start_m) / n
    overhead = (rm_m - direct_m) / n
    return {"jobs": n, "iters": iters, "job_ms": per_job_direct * 1e3, "ringmaster_s": rm_m, "direct_s": direct_m,
            "startup_s": start_m, "ringmaster_all_s": rm_ts, "direct_all_s": direct_ts,
            "overhead_us_per_job": overhead * 1e6, "overhead_pct": 100 * overhead / per_job_direct}


def fmt_t(t):
    return f"{t['median']:.3f} s ({t['min']:.3f}–{t['max']:.3f})"


def yes(ok):
    return "**yes**" if ok else "**no**"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringmaster", required=True)
    ap.add_argument("--pool-bench", required=True)
    ap.add_argument("--c-worker", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--json")
    ap.add_argument("--headline", help="append the headline rows to this table (bench/results/headline.md)")
    a = ap.parse_args()
    if not shutil.which("parallel"):
        sys.exit("programs: GNU parallel is not installed (scripts/setup-bench installs it)")
    a.reps = 1 if a.quick else 3
    a.jobs = 10_000 if a.quick else 100_000
    a.exec_jobs = 200 if a.quick else 2000
    a.abi_jobs = 20_000 if a.quick else 300_000
    a.spin_jobs = 200 if a.quick else 2000

    with tempfile.TemporaryDirectory(prefix="ringmaster-programs-") as tmp:
        jp = jsonl_vs_pool(a, tmp)
        ex = exec_vs_parallel(a, tmp)
        ab = c_abi_vs_serve(a)
        oh = overhead_1ms(a, tmp)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    md = [
        "# Your own programs as workers, against the peers",
        "",
        f"- Produced by: `bench/run{' --quick' if a.quick else ''}` (`bench/cli/programs.py`), median of {a.reps} "
        "runs each (min–max in brackets), every result checked",
        f"- Machine: {os.cpu_count()} cores, CPU \"{cpu}\"; worker programs on {PY} (Python {platform.python_version()})",
        "",
        "> Absolute figures from a shared 2-core VM are only indicative; compare the ratios, measured in the same run.",
        "",
        f"## A jsonl Python worker against multiprocessing.Pool ({jp['jobs']:,} tiny jobs, 2 workers, file to file)",
        "",
        "The ringmaster pool's workers are the six-line loop over `sys.stdin` of the README (`protocol = \"jsonl\"`); "
        "the Pool runs the same per-job Python in `imap_unordered`.",
        "",
        "| Runner | time | jobs/s |",
        "|---|---:|---:|",
        f"| ringmaster run, jsonl Python workers | {fmt_t(jp['ringmaster_jsonl'])} | {jp['jobs'] / jp['ringmaster_jsonl']['median']:,.0f} |",
        f"| Pool.imap_unordered, chunksize 1 | {fmt_t(jp['pool_chunksize1'])} | {jp['jobs'] / jp['pool_chunksize1']['median']:,.0f} |",
        f"| Pool.imap_unordered, chunksize {jp['pool_tuned_chunksize']} (best of 64/256/1024/4096) | {fmt_t(jp['pool_tuned'])} | "
        f"{jp['jobs'] / jp['pool_tuned']['median']:,.0f} |",
        "",
        f"## exec: one process per job against GNU parallel ({ex['jobs']:,} jobs, 2 at a time)",
        "",
        "| Command | ringmaster run (`protocol = \"exec\"`) | GNU parallel -j2 | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, row in ex["commands"].items():
        md.append(f"| `{name}` | {fmt_t(row['ringmaster'])} | {fmt_t(row['parallel'])} | {row['ratio']:.1f}× |")
    md += [
        "",
        f"## The C ABI against serve() ({ab['jobs']:,} tiny echo jobs through the embedding API, 2 workers)",
        "",
        "| Workers | time | jobs/s |",
        "|---|---:|---:|",
        f"| C program on ringmaster/worker.h (libringmaster_worker_c.so) | {fmt_t(ab['c_abi'])} | {ab['c_abi']['jobs_per_s']:,.0f} |",
        f"| C++ program on ringmaster::serve() | {fmt_t(ab['serve'])} | {ab['serve']['jobs_per_s']:,.0f} |",
        f"| forked from the embedding program (reference) | {fmt_t(ab['forked'])} | {ab['forked']['jobs_per_s']:,.0f} |",
        "",
        f"## What ringmaster adds to 1 ms jobs in a jsonl worker ({oh['jobs']:,} jobs, 1 worker)",
        "",
        f"Each job is {oh['iters']:,} iterations of a Python loop ({oh['job_ms']:.3f} ms here, from the baseline less "
        f"Python's start, {oh['startup_s'] * 1e3:.0f} ms). The same program, fed the same request lines from a file by the "
        f"shell, is the baseline; both times include starting Python; median of {a.reps + 2} interleaved runs.",
        "",
        "| Runner | time |",
        "|---|---:|",
        f"| ringmaster run (jsonl, 1 worker) | {oh['ringmaster_s']:.3f} s |",
        f"| the program alone, stdin from a file | {oh['direct_s']:.3f} s |",
        f"| added per job | {oh['overhead_us_per_job']:.1f} µs ({oh['overhead_pct']:.2f}% of the job) |",
        "",
        "## Targets",
        "",
        "| Target | Measured | Met |",
        "|---|---|---|",
        f"| jsonl Python workers at least 3× Pool chunksize 1 | {jp['ratio_vs_chunksize1']:.1f}× "
        f"({jp['ratio_vs_tuned']:.2f}× the tuned Pool) | {yes(jp['ratio_vs_chunksize1'] >= 3)} |",
    ]
    for name, row in ex["commands"].items():
        md.append(f"| exec `{name}` at least 3× GNU parallel | {row['ratio']:.1f}× | {yes(row['ratio'] >= 3)} |")
    md += [
        f"| C ABI within 10% of serve() | {ab['ratio_c_to_serve']:.3f}× | {yes(ab['ratio_c_to_serve'] >= 0.9)} |",
        f"| at most 2% added to 1 ms jobs | {oh['overhead_pct']:.2f}% | {yes(oh['overhead_pct'] <= 2)} |",
        "",
    ]
    write_report(md, a.out, a.json,
                 {"schema": "ringmaster-programs/1", "cores": os.cpu_count(), "cpu": cpu, "jsonl_vs_pool": jp,
                  "exec_vs_parallel": ex, "c_abi_vs_serve": ab, "overhead_1ms": oh})
    if a.headline:
        echo = ex["commands"]["echo {}"]
        rows = [
            f"| Your Python program as the worker (jsonl), tiny jobs, 2 workers | "
            f"{jp['jobs'] / jp['ringmaster_jsonl']['median'] / 1e3:,.0f} k jobs/s | "
            f"{jp['ratio_vs_chunksize1']:.1f}× Pool chunksize 1, {jp['ratio_vs_tuned']:.2f}× Pool tuned |",
            f"| One process per job (exec `echo {{}}`), 2 at a time | {ex['jobs'] / echo['ringmaster']['median']:,.0f} jobs/s | "
            f"{echo['ratio']:.1f}× GNU parallel -j2 |",
            f"| 1 ms jobs in a jsonl worker: time added per job | {oh['overhead_us_per_job']:.1f} µs "
            f"({oh['overhead_pct']:.2f}%) | against the program fed from a file |",
            f"| C ABI worker, tiny jobs, 2 workers | {ab['c_abi']['jobs_per_s'] / 1e6:.2f} M jobs/s | "
            f"{ab['ratio_c_to_serve']:.2f}× the C++ serve() worker |",
        ]
        with open(a.headline, "a") as f:
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
