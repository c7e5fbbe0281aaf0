#!/usr/bin/env python3
"""ringmaster against its peers, every workload, one run: bench/run calls this.

Peers, all running the same jobs (echo: result = payload; spin: a calibrated CPU loop of
a chosen duration) on this machine, in the same run, taking turns, several repetitions:

  ringmaster        the embedding API (ringmaster_pool_bench, bench/pools/)
  pipe pool         fork + pipes, C++ (bench/pools/peers.cpp)
  mq pool           boost::interprocess::message_queue, C++ (bench/pools/peers.cpp)
  Pool cs=1         Python multiprocessing.Pool.imap_unordered, chunksize 1
  Pool tuned        the same, chunksize = jobs / (4 x workers) (what Pool.map picks)
  ProcessPool       Python concurrent.futures.ProcessPoolExecutor.map (chunksize 1)
  GNU parallel      one process per job (`parallel -j W ringmaster_pool_bench spin-job K`)
  loop              the job called in a plain loop in one process: zero overhead

Every result of every job is checked (by the C++ program, or here); a wrong result, a
failed run or a missing result exits 1 and writes no report.

    bench/suite.py --bench BUILD/bench/ringmaster_pool_bench --ringmaster BUILD/cli/ringmaster
                   --out DIR [--quick | --smoke]
writes DIR/suite.json, DIR/suite.md and DIR/charts/*.png.
"""
import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

A = None  # parsed arguments
SCALE = 1.0  # fraction of the full run's work per measurement


def fail(msg):
    sys.exit(f"bench/suite.py: WRONG RESULT or failed run: {msg} — no report written")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def n(full, least=1):
    return max(least, int(full * SCALE))


# ----------------------------------------------------------------------------- C++ peers
def cpp(workload, **kw):
    cmd = [A.bench, workload]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        fail(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout)


# -------------------------------------------------------------------------- Python peers
def py_spin(k):
    x = k
    for _ in range(k):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return x


def py_job(arg):
    """(index, type, payload) -> (index, result): the same jobs as the C++ peers run."""
    i, kind, payload = arg
    return i, (payload if kind == "echo" else py_spin(payload))


def echo_payloads(size):
    """16 distinct payloads of `size` bytes, so that a reply swapped with another's is caught."""
    base = bytes(range(97, 123)) * (size // 26 + 2)
    return [base[i:i + size] for i in range(16)]


def py_check(results, jobs, expected, who):
    seen = 0
    for i, r in results:
        if r != expected[i % len(expected)]:
            fail(f"{who}: job {i} returned a wrong result")
        seen += 1
    if seen != jobs:
        fail(f"{who}: {seen} results for {jobs} jobs")


def py_run(peer, workers, jobs, kind, payloads, expected):
    """Seconds from first submission to last result; the pool started and warmed up."""
    args = [(i, kind, payloads[i % len(payloads)]) for i in range(jobs)]
    if peer == "pyloop":
        t0 = time.perf_counter()
        res = [py_job(a) for a in args]
        s = time.perf_counter() - t0
    elif peer in ("pool1", "pooltuned"):
        cs = 1 if peer == "pool1" else max(1, jobs // (4 * workers))
        with mp.get_context("fork").Pool(workers) as pool:
            list(pool.imap_unordered(py_job, args[:min(jobs, 4 * workers)]))
            t0 = time.perf_counter()
            res = list(pool.imap_unordered(py_job, args, chunksize=cs))
            s = time.perf_counter() - t0
    elif peer == "ppe":
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as ex:
            list(ex.map(py_job, args[:min(jobs, 4 * workers)]))
            t0 = time.perf_counter()
            res = list(ex.map(py_job, args))
            s = time.perf_counter() - t0
    else:
        raise ValueError(peer)
    py_check(res, jobs, expected, peer)
    return s


def py_latency(peer, samples):
    """Round trips in µs of one 16-byte echo job at a time on an idle one-process pool."""
    p = b"abcdefghijklmnop"
    us = []
    if peer == "pool1":
        with mp.get_context("fork").Pool(1) as pool:
            for _ in range(100):
                pool.apply(py_job, ((0, "echo", p),))
            for i in range(samples):
                t0 = time.perf_counter()
                r = pool.apply(py_job, ((i, "echo", p),))
                us.append((time.perf_counter() - t0) * 1e6)
                if r != (i, p):
                    fail("Pool.apply returned a wrong result")
    else:
        with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as ex:
            for _ in range(100):
                ex.submit(py_job, (0, "echo", p)).result()
            for i in range(samples):
                t0 = time.perf_counter()
                r = ex.submit(py_job, (i, "echo", p)).result()
                us.append((time.perf_counter() - t0) * 1e6)
                if r != (i, p):
                    fail("ProcessPoolExecutor returned a wrong result")
    return {"p50_us": pct(us, 50), "p99_us": pct(us, 99), "p999_us": pct(us, 99.9), "samples": len(us)}


def pct(v, p):
    v = sorted(v)
    k = max(1, min(len(v), -(-len(v) * p // 100)))
    return v[int(k) - 1]


def py_iters_per_us():
    best = 0
    k = 1000
    for _ in range(12):
        t0 = time.perf_counter()
        py_spin(k)
        us = (time.perf_counter() - t0) * 1e6
        if us < 20000:
            k *= 2
        else:
            best = max(best, k / us)
    return best


# ------------------------------------------------------------------------- GNU parallel
def parallel_run(workers, jobs, kind, arg, expected):
    """`parallel -j W` running one ringmaster_pool_bench process per job; seconds in all
    (GNU parallel's own start-up included: it is part of that way of working)."""
    lines = "".join(f"{arg if kind == 'spin' else arg + str(i % 10)}\n" for i in range(jobs))
    t0 = time.perf_counter()
    p = subprocess.run(["parallel", "--will-cite", "-k", "-j", str(workers), A.bench, f"{kind}-job", "{}"],
                       input=lines, capture_output=True, text=True, timeout=600)
    s = time.perf_counter() - t0
    if p.returncode != 0:
        fail(f"GNU parallel exited {p.returncode}: {p.stderr[-500:]}")
    out = p.stdout.split("\n")[:-1]
    want = [expected if kind == "spin" else arg + str(i % 10) for i in range(jobs)]
    if out != want:
        fail(f"GNU parallel: {len(out)} output lines, not the {jobs} expected results")
    return s


# ------------------------------------------------------------------------------ helpers
def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    return {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "python": platform.python_version(),
            "parallel": subprocess.run(["parallel", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
            "load_start": open("/proc/loadavg").read().split()[:3]}


PEERS_TINY = ["ringmaster", "pipe", "mq", "pool1", "pooltuned", "ppe", "parallel", "loop"]
NAMES = {"ringmaster": "ringmaster", "pipe": "pipe pool (C++)", "mq": "message_queue pool (C++)",
         "pool1": "Pool, chunksize 1", "pooltuned": "Pool, tuned chunksize", "ppe": "ProcessPoolExecutor",
         "parallel": "GNU parallel", "loop": "in-process loop (C++)", "pyloop": "in-process loop (Python)"}


def repeat(fns, reps):
    """fns: {key: () -> value}; runs every fn once per repetition, taking turns."""
    out = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            out[k].append(fn())
    return out


# ---------------------------------------------------------------------------- workloads
def tiny_vs_workers(R):
    res = {}
    payloads = echo_payloads(16)
    for w in (1, 2, 4):
        log(f"tiny jobs, {w} workers")
        jobs = {"ringmaster": n(200_000, 2000), "pipe": n(200_000, 2000), "mq": n(200_000, 2000),
                "pool1": n(20_000, 500), "pooltuned": n(100_000, 1000), "ppe": n(10_000, 300),
                "parallel": n(100, 10), "loop": n(2_000_000, 20000)}
        fns = {}
        for p in ("ringmaster", "pipe", "mq", "loop"):
            fns[p] = lambda p=p: jobs[p] / cpp("throughput", peer=p, type="echo", workers=w, jobs=jobs[p], size=16)["seconds"]
        for p in ("pool1", "pooltuned", "ppe"):
            fns[p] = lambda p=p: jobs[p] / py_run(p, w, jobs[p], "echo", payloads, payloads)
        fns["parallel"] = lambda: jobs["parallel"] / parallel_run(w, jobs["parallel"], "echo", "payload-", None)
        r = repeat(fns, R)
        res[str(w)] = {k: summary(v) for k, v in r.items()}
        res[str(w)]["jobs"] = jobs
    return res


SIZES = [16, 256, 4096, 65536, 1 << 20]


def message_size(R):
    res = {}
    for size in SIZES:
        log(f"message size {size} B")
        total = n(32 << 20, 1 << 20)
        jobs = max(50, min(n(100_000, 2000), total // size))
        pyjobs = max(20, min(n(50_000, 1000), total // size))
        payloads = echo_payloads(size)
        fns = {p: (lambda p=p: jobs / cpp("throughput", peer=p, type="echo", workers=2, jobs=jobs, size=size)["seconds"])
               for p in ("ringmaster", "pipe", "mq")}
        fns["pooltuned"] = lambda: pyjobs / py_run("pooltuned", 2, pyjobs, "echo", payloads, payloads)
        r = repeat(fns, R)
        res[str(size)] = {k: summary(v) for k, v in r.items()}
    return res


DURATIONS = [10, 30, 100, 300, 1000, 3000, 10000]


def job_duration(R, ipu, py_ipu):
    """1 worker each; per-job time of each peer against its in-process loop of the same job."""
    res = {"iters_per_us": ipu, "py_iters_per_us": py_ipu}
    for d in DURATIONS:
        log(f"job duration {d} µs")
        k, pk = max(1, int(ipu * d)), max(1, int(py_ipu * d))
        jobs = max(10, int(0.25e6 * SCALE / d))  # about 0.25 s of work per run
        pjobs = max(5, int(jobs / 4))  # GNU parallel and the Python pools cost more per job
        fns = {p: (lambda p=p: cpp("throughput", peer=p, type="spin", workers=1, jobs=jobs, iters=k)["seconds"] / jobs)
               for p in ("loop", "ringmaster", "pipe", "mq")}
        pexp = [py_spin(pk)]
        for p in ("pyloop", "pool1", "pooltuned", "ppe"):
            fns[p] = lambda p=p: py_run(p, 1, pjobs, "spin", [pk], pexp) / pjobs
        spin_out = subprocess.run([A.bench, "spin-job", str(k)], capture_output=True, text=True).stdout.strip()
        par_jobs = max(5, min(pjobs, n(20, 5)))  # a process per job costs ms
        fns["parallel"] = lambda: parallel_run(1, par_jobs, "spin", str(k), spin_out) / par_jobs
        r = repeat(fns, R)
        row = {k2: summary([v * 1e6 for v in vals]) for k2, vals in r.items()}  # µs per job
        row["jobs"] = {"c++": jobs, "python": pjobs, "parallel": par_jobs}
        res[str(d)] = row
    return res


def latency(R):
    log("round-trip latency")
    s, ps = n(20_000, 500), n(5_000, 200)
    fns = {p: (lambda p=p: cpp("latency", peer=p, samples=s)) for p in ("ringmaster", "pipe", "mq", "loop")}
    fns["pool1"] = lambda: py_latency("pool1", ps)
    fns["ppe"] = lambda: py_latency("ppe", ps)
    r = repeat(fns, R)
    return {k: {q: summary([x[q] for x in v]) for q in ("p50_us", "p99_us", "p999_us")} for k, v in r.items()}


def _die(_):
    os.kill(os.getpid(), 9)


def py_crash_behaviour():
    """What the Python pools do when a job SIGKILLs its worker, observed, not assumed."""
    out = {}
    with mp.get_context("fork").Pool(2) as pool:
        r = pool.apply_async(_die, (0,))
        try:
            r.get(timeout=3)
            out["pool"] = "returned a result"
        except mp.TimeoutError:
            out["pool"] = "the job's result never came (no error after 3 s: a caller waiting without a timeout hangs)"
        except Exception as e:  # noqa: BLE001 - reported as observed
            out["pool"] = f"raised {type(e).__name__}"
        ok = pool.apply_async(py_job, ((1, "echo", b"x"),)).get(timeout=10)
        out["pool_after"] = "later jobs still run" if ok == (1, b"x") else "later jobs fail"
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
        try:
            ex.submit(_die, 0).result(timeout=10)
            out["ppe"] = "returned a result"
        except Exception as e:  # noqa: BLE001
            out["ppe"] = f"raised {type(e).__name__}"
        try:
            ex.submit(py_job, (1, "echo", b"x")).result(timeout=10)
            out["ppe_after"] = "later jobs still run"
        except Exception as e:  # noqa: BLE001
            out["ppe_after"] = f"every later job raises {type(e).__name__} (the executor is unusable)"
    return out


def restart(R):
    log("restart")
    res = {"replacement": [cpp("restart", samples=n(200, 20)) for _ in range(R)], "python": py_crash_behaviour()}
    jobs = n(20_000, 1000)
    fns = {str(p): (lambda p=p: cpp("crash", crash_pct=p, workers=2, jobs=jobs)) for p in (0, 1, 10)}
    r = repeat(fns, R)
    res["crash"] = {k: {"jobs_per_s": summary([jobs / x["seconds"] for x in v]),
                        "restarts": summary([x["restarts"] for x in v])} for k, v in r.items()}
    res["crash_jobs"] = jobs
    return res


def memory(R):
    log("memory")
    res = {"workers": {}, "queued": {}, "stream": {}}
    for w in (1, 2, 4, 8):
        v = [cpp("memory-workers", workers=w) for _ in range(R)]
        res["workers"][str(w)] = {k: summary([x[k] for x in v]) for k in v[0]}
    for q in (10_000, 100_000, 1_000_000) if SCALE >= 0.5 else (1_000, 10_000, 100_000):
        v = [cpp("memory-queued", queued=q, size=64) for _ in range(max(1, R // 2))]
        res["queued"][str(q)] = summary([(x["rss_after_kb"] - x["rss_before_kb"]) * 1024 / q for x in v])
    for jobs in (100_000, 1_000_000) if SCALE >= 0.5 else (100_000, 200_000):
        x = cpp("memory-stream", jobs=jobs, size=1024)
        res["stream"][str(jobs)] = x
    res["cli_stream"] = cli_stream(1_000_000 if SCALE >= 0.5 else 100_000)
    return res


def cli_stream(jobs):
    """`ringmaster run` streaming a job file of `jobs` 64-byte echo jobs, against Python's
    Pool.imap_unordered reading the same file: peak RSS of each parent process."""
    log(f"streaming {jobs} jobs from a file")
    with tempfile.TemporaryDirectory(prefix="ringmaster-bench-stream-") as tmp:
        path = os.path.join(tmp, "jobs.jsonl")
        pay = "x" * 56
        with open(path, "w") as f:
            for i in range(jobs):
                f.write(f'{{"id":"{i}","type":"echo","payload":"{pay}{i % 100000000:08d}"}}\n')
        cfg = os.path.join(tmp, "echo.toml")
        with open(cfg, "w") as f:
            f.write("[pools.echo]\nworkers = 2\n")
        out = os.path.join(tmp, "results.jsonl")

        def measure(cmd):
            # Peak RSS from VmHWM, read while the process runs (wait4's ru_maxrss would
            # count the pre-exec copy of this Python process).
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            hwm = 0
            while p.poll() is None:
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        hwm = max(hwm, next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")))
                except (OSError, StopIteration):
                    pass
                time.sleep(0.005)
            s = time.perf_counter() - t0
            err = p.stderr.read().decode()[-1000:]
            p.stderr.close()
            if p.returncode != 0:
                fail(f"{cmd[0]} exited {p.returncode}: {err}")
            count = 0
            with open(out) as f:
                for line in f:
                    r = json.loads(line)
                    if r.get("status") != "ok" or r.get("result") != f"{pay}{int(r['id']) % 100000000:08d}":
                        fail(f"{cmd[0]}: wrong result line {line.strip()}")
                    count += 1
            if count != jobs:
                fail(f"{cmd[0]}: {count} result lines for {jobs} jobs")
            return {"seconds": s, "peak_rss_kb": hwm}

        rm = measure([A.ringmaster, "run", cfg, "--jobs", path, "--results", out, "--no-progress", "--log-level", "warn"])
        py = measure([sys.executable, os.path.abspath(__file__), "--py-stream", path, out])
        return {"jobs": jobs, "file_bytes": os.path.getsize(path), "payload_bytes": 64, "ringmaster": rm, "python": py}


def py_stream(path, out):
    """The Python side of cli_stream: what a Python user writes to stream a job file."""
    with open(path) as jobs, open(out, "w") as o, mp.get_context("fork").Pool(2) as pool:
        for line in pool.imap_unordered(_stream_job, jobs, chunksize=1024):
            o.write(line + "\n")


def _stream_job(line):
    job = json.loads(line)
    return json.dumps({"id": job["id"], "status": "ok", "result": job["payload"], "attempts": 1})


# ------------------------------------------------------------------------------ main
def main():
    global A, SCALE
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench")
    ap.add_argument("--ringmaster")
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--py-stream", nargs=2)
    A = ap.parse_args()
    if A.py_stream:
        py_stream(*A.py_stream)
        return
    if shutil.which("parallel") is None:
        sys.exit("bench/suite.py: GNU parallel is missing: run scripts/setup-bench")
    SCALE, R = (0.02, 1) if A.smoke else (0.05, 2) if A.quick else (1.0, 5)
    t_start = time.time()
    os.makedirs(A.out, exist_ok=True)
    m = machine()
    log(f"{m['cores']} cores, {m['cpu']}, load average {' '.join(m['load_start'])}")
    ipu = cpp("calibrate")["iters_per_us"]
    py_ipu = py_iters_per_us()
    res = {"schema": "ringmaster-bench-suite/1", "mode": "smoke" if A.smoke else "quick" if A.quick else "full",
           "repetitions": R, "machine": m, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    res["tiny"] = tiny_vs_workers(R)
    res["size"] = message_size(R)
    res["duration"] = job_duration(R, ipu, py_ipu)
    res["latency"] = latency(R)
    res["restart"] = restart(R)
    if A.ringmaster:
        res["memory"] = memory(R)
    m["load_end"] = open("/proc/loadavg").read().split()[:3]
    res["seconds"] = time.time() - t_start
    with open(os.path.join(A.out, "suite.json"), "w") as f:
        json.dump(res, f, indent=1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import report
    report.write(res, A.out)
    log(f"done in {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()
