"""Writes the report of bench/suite.py: DIR/suite.md (tables), DIR/headline.md (the few
ratios README shows) and DIR/charts/*.png (matplotlib, Agg backend)."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NAMES = {"ringmaster": "ringmaster", "pipe": "pipe pool (C++)", "mq": "message_queue pool (C++)",
         "pool1": "Pool, chunksize 1", "pooltuned": "Pool, tuned chunksize", "ppe": "ProcessPoolExecutor",
         "parallel": "GNU parallel", "loop": "in-process loop (C++)", "pyloop": "in-process loop (Python)"}
COLORS = {"ringmaster": "#d62728", "pipe": "#1f77b4", "mq": "#2ca02c", "pool1": "#9467bd", "pooltuned": "#8c564b",
          "ppe": "#e377c2", "parallel": "#7f7f7f", "loop": "#000000", "pyloop": "#bcbd22"}


def si(x, unit=""):
    for f, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= f:
            return f"{x / f:.3g} {s}{unit}".strip()
    return f"{x:.3g} {unit}".strip()


def spread(s, fmt=si):
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def us(x):
    if x >= 1000:
        return f"{x / 1000:.3g} ms"
    return f"{x:.3g} µs"


def kib(x):
    return f"{x / 1024:.1f} MiB" if x >= 1024 else f"{x:.0f} KiB"


def size_name(b):
    b = int(b)
    return f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB" if b >= 1024 else f"{b} B"


def save(fig, ax, charts, name, legend=8):
    """Legend, grid, layout; writes charts/NAME.png and closes the figure."""
    if legend:
        ax.legend(fontsize=legend)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(charts, name + ".png"), dpi=100)
    plt.close(fig)


def write(res, out):
    charts = os.path.join(out, "charts")
    os.makedirs(charts, exist_ok=True)
    m = res["machine"]
    md = []
    head = []
    w = md.append
    w("## ringmaster against its peers (`bench/suite.py`)")
    w("")
    by = {"full": "bench/run", "quick": "bench/run --quick", "smoke": "bench/suite.py --smoke"}[res["mode"]]
    reps = f"{res['repetitions']} repetition{'s' if res['repetitions'] != 1 else ''}"
    w(f"- Produced by `{by}` on {res['date']}, {reps} of every measurement, the peers taking turns; "
      f"median (min–max over the repetitions); took {res['seconds']:.0f} s")
    w(f"- Machine: {m['cores']} cores, CPU \"{m['cpu']}\", Linux {m['kernel']}, Python {m['python']}, {m['parallel']}")
    w(f"- Load average (1, 5, 15 min): {' '.join(m['load_start'])} at the start, {' '.join(m['load_end'])} at the end")
    w("")
    w(f"> Absolute figures from a shared {m['cores']}-core VM are only indicative: compare the ratios, each "
      "measured against peers in the same run. Every result of every job was checked; a wrong one fails the run.")
    w("")
    w("Peers, all running the same jobs (echo: result = payload; spin: a loop calibrated to the job's duration): "
      "ringmaster's embedding API; a pool on fork + pipes and one on `boost::interprocess::message_queue` "
      "(C++, `bench/pools/peers.cpp`, built the obvious way: a few jobs in flight per worker); Python's "
      "`multiprocessing.Pool.imap_unordered` (chunksize 1, and tuned: jobs / (4 × workers), what `Pool.map` "
      "picks) and `concurrent.futures.ProcessPoolExecutor.map`; GNU `parallel` starting one process per job "
      "(its own start-up included); and the job called in a plain loop in one process, the zero-overhead reference.")
    w("")

    # --- tiny jobs vs workers
    t = res["tiny"]
    peers = ["ringmaster", "pipe", "mq", "pool1", "pooltuned", "ppe", "parallel", "loop"]
    w("### Tiny jobs: throughput against the number of workers")
    w("")
    w("16-byte echo jobs, jobs/s. Ratio: ringmaster's median over the peer's (above 1: ringmaster faster). "
      f"{m['cores']} cores: 4 workers show what oversubscription costs.")
    w("")
    w("| Peer | " + " | ".join(f"{k} worker{'s' if k != '1' else ''}" for k in t) + " | ringmaster / peer (" +
      ", ".join(t) + " workers) |")
    w("|---|" + "---:|" * (len(t) + 1))
    for p in peers:
        ratios = ", ".join(f"{t[k]['ringmaster']['median'] / t[k][p]['median']:.2g}×" for k in t)
        w(f"| {NAMES[p]} | " + " | ".join(spread(t[k][p]) for k in t) + f" | {'—' if p == 'ringmaster' else ratios} |")
    w("")
    w("![tiny jobs against workers](charts/tiny_jobs_workers.png)")
    w("")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(peers)
    for i, p in enumerate(peers):
        xs = [j + (i - len(peers) / 2 + 0.5) * width for j in range(len(t))]
        ys = [t[k][p]["median"] for k in t]
        err = [[t[k][p]["median"] - t[k][p]["min"] for k in t], [t[k][p]["max"] - t[k][p]["median"] for k in t]]
        ax.bar(xs, ys, width, yerr=err, label=NAMES[p], color=COLORS[p], capsize=2)
    ax.set_xticks(range(len(t)), [f"{k} worker{'s' if k != '1' else ''}" for k in t])
    ax.set_yscale("log")
    ax.set_ylabel("jobs/s (log)")
    ax.set_title(f"Tiny jobs (16 B echo): throughput, {m['cores']}-core machine")
    ax.set_ylim(top=ax.get_ylim()[1] * 300)  # room for the legend above the bars
    ax.legend(fontsize=7, ncol=4, loc="upper center")
    save(fig, ax, charts, "tiny_jobs_workers", legend=0)
    t2 = t["2"] if "2" in t else t[list(t)[-1]]
    head.append(("Tiny jobs/s, 2 workers", si(t2["ringmaster"]["median"]),
                 f"{t2['ringmaster']['median'] / t2['pool1']['median']:.0f}× Pool chunksize 1, "
                 f"{t2['ringmaster']['median'] / t2['pooltuned']['median']:.1f}× Pool tuned, "
                 f"{t2['ringmaster']['median'] / t2['pipe']['median']:.2f}× pipe pool, "
                 f"{t2['ringmaster']['median'] / t2['mq']['median']:.2f}× message_queue pool"))

    # --- message size
    s = res["size"]
    sp = ["ringmaster", "pipe", "mq", "pooltuned"]
    w("### Throughput against message size")
    w("")
    w("Echo jobs of each size on 2 workers; MB/s counts the payload once (10^6 B/s). Ratio: ringmaster over the peer.")
    w("")
    w("| Size | " + " | ".join(f"{NAMES[p]} MB/s" for p in sp) + " | ringmaster / pipe | ringmaster / message_queue | ringmaster / Pool |")
    w("|---:|" + "---:|" * (len(sp) + 3))
    for size, row in s.items():
        mb = {p: {k: row[p][k] * int(size) / 1e6 for k in ("median", "min", "max")} for p in sp}
        w(f"| {size_name(size)} | " + " | ".join(spread(mb[p], lambda x: f"{x:.3g}") for p in sp) + " | " +
          " | ".join(f"{row['ringmaster']['median'] / row[p]['median']:.2g}×" for p in ("pipe", "mq", "pooltuned")) + " |")
    w("")
    w("![throughput against message size](charts/message_size.png)")
    w("")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [int(k) for k in s]
    for p in sp:
        ax.errorbar(xs, [s[k][p]["median"] * int(k) / 1e6 for k in s],
                    yerr=[[(s[k][p]["median"] - s[k][p]["min"]) * int(k) / 1e6 for k in s],
                          [(s[k][p]["max"] - s[k][p]["median"]) * int(k) / 1e6 for k in s]],
                    marker="o", label=NAMES[p], color=COLORS[p], capsize=2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(xs, [size_name(x) for x in xs])
    ax.set_xlabel("message size")
    ax.set_ylabel("payload MB/s (log)")
    ax.set_title("Echo jobs of growing size, 2 workers")
    save(fig, ax, charts, "message_size", 8)

    # --- job duration
    d = res["duration"]
    dp = ["ringmaster", "pipe", "mq", "pool1", "pooltuned", "ppe", "parallel"]
    ds = [k for k in d if k not in ("iters_per_us", "py_iters_per_us")]

    def ref(p, k):
        return d[k]["pyloop" if p in ("pool1", "pooltuned", "ppe") else "loop"]["median"]

    def eff(p, k):
        return ref(p, k) / d[k][p]["median"]

    w("### Overhead per job against job duration")
    w("")
    w("One worker; each job spins a loop calibrated to the duration. Overhead = the peer's time per job minus the "
      "in-process loop's (the C++ loop for the C++ peers and GNU parallel, the Python loop for the Python pools, "
      "whose spin is the same loop in Python); efficiency = loop time / peer time; above 100%: the loop's runs "
      "were slowed more than the peer's (noise). The last row: the shortest job from which on the peer's "
      "efficiency stays at 95% or more.")
    w("")
    w("| Job | " + " | ".join(f"{NAMES[p]}" for p in dp) + " |")
    w("|---:|" + "---:|" * len(dp))
    for k in ds:
        w(f"| {us(float(k))} | " + " | ".join(f"{us(max(0.0, d[k][p]['median'] - ref(p, k)))} ({eff(p, k) * 100:.0f}%)"
                                                for p in dp) + " |")
    # The shortest duration from which on every longer one is at 95% or more (one noisy
    # point above 95% among worse ones does not count).
    first95 = {p: next((k for i, k in enumerate(ds) if all(eff(p, k2) >= 0.95 for k2 in ds[i:])), None) for p in dp}
    w("| **95% from** | " + " | ".join(us(float(first95[p])) if first95[p] else f"> {us(float(ds[-1]))}" for p in dp) + " |")
    w("")
    w("![overhead per job against job duration](charts/job_duration.png)")
    w("")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    xs = [float(k) for k in ds]
    for p in dp:
        # An overhead within noise of zero (or below it) has no place on a log scale: left out.
        a1.plot(xs, [d[k][p]["median"] - ref(p, k) if d[k][p]["median"] > ref(p, k) else float("nan") for k in ds],
                marker="o", label=NAMES[p], color=COLORS[p])
        a2.plot(xs, [eff(p, k) * 100 for k in ds], marker="o", label=NAMES[p], color=COLORS[p])
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xlabel("job duration (µs, log)")
        a.grid(alpha=0.3)
    a1.set_yscale("log")
    a1.set_ylabel("overhead per job (µs, log)")
    a1.set_title("Overhead per job, 1 worker (points ≤ 0 left out)")
    a2.axhline(95, color="k", ls="--", lw=1)
    a2.set_ylim(0, 105)
    a2.set_ylabel("efficiency vs in-process loop (%)")
    a2.set_title("Efficiency (dashed: 95%)")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(charts, "job_duration.png"), dpi=100)
    plt.close(fig)
    head.append(("Shortest job at ≥ 95% of the in-process loop, 1 worker",
                 us(float(first95["ringmaster"])) if first95["ringmaster"] else f"> {us(float(ds[-1]))}",
                 ", ".join(f"{NAMES[p]} {us(float(first95[p])) if first95[p] else '> ' + us(float(ds[-1]))}"
                           for p in ("pipe", "mq", "pooltuned", "ppe", "parallel"))))

    # --- latency
    lt = res["latency"]
    lp = ["ringmaster", "pipe", "mq", "pool1", "ppe", "loop"]
    lnames = dict(NAMES, pool1="Pool.apply", ppe="ProcessPoolExecutor.submit", loop="direct call (C++)")
    w("### Round-trip latency on an idle pool")
    w("")
    w("One 16-byte echo job at a time on a one-worker pool, submit to result; µs, nearest-rank percentiles of each "
      "run, median (min–max) over the runs. ringmaster's waits spin briefly, then sleep (its default); the peers "
      "sleep in the kernel (pipe read, condition variable); a pool has no option to spin without end, so "
      "spinning waits are measured on the rings alone, below. Processes are not pinned: the kernel may run "
      "both ends on one CPU. Ratio: the peer's p50 over ringmaster's.")
    w("")
    w("| Peer | p50 | p99 | p99.9 | peer / ringmaster (p50) |")
    w("|---|---:|---:|---:|---:|")
    for p in lp:
        ratio = lt[p]["p50_us"]["median"] / lt["ringmaster"]["p50_us"]["median"]
        w(f"| {lnames[p]} | " + " | ".join(spread(lt[p][q], lambda x: f"{x:.3g}") for q in ("p50_us", "p99_us", "p999_us")) +
          (" | — |" if p == "ringmaster" else f" | {ratio:.2g}× |"))
    w("")
    w("![round-trip latency](charts/latency.png)")
    w("")
    ipc = None
    if os.path.exists(os.path.join(out, "ipc.json")):
        import json
        with open(os.path.join(out, "ipc.json")) as f:
            ipc = [x for x in json.load(f)["latency"] if x["size"] == 64]
    if ipc:
        w("The rings alone (`ringmaster_ipc_bench`, the ipc section below), 64-byte messages, parent and child "
          "pinned to different CPUs: sleeping waits against spinning waits, against a pipe and a message_queue:")
        w("")
        w("| Transport | p50 µs | p99 µs | p99.9 µs |")
        w("|---|---:|---:|---:|")
        for x in ipc:
            name = x["transport"] + (f", {x['wait']} waits" if x["wait"] else "")
            w(f"| {name} | {x['p50_ns'] / 1e3:.3g} | {x['p99_ns'] / 1e3:.3g} | {x['p999_ns'] / 1e3:.3g} |")
        w("")
    fig, axes = plt.subplots(1, 2 if ipc else 1, figsize=(13 if ipc else 9, 4.5), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2] if ipc else [1]})
    ax = axes[0][0]
    if ipc:
        a2 = axes[0][1]
        names = [x["transport"].replace("message_queue", "mq") + (f"\n{x['wait']}" if x["wait"] else "") for x in ipc]
        for i, q in enumerate(("p50_ns", "p99_ns", "p999_ns")):
            a2.bar([j + (i - 1) * 0.27 for j in range(len(ipc))], [x[q] / 1e3 for x in ipc], 0.27,
                   label=q.replace("_ns", "").replace("p999", "p99.9"))
        a2.set_xticks(range(len(ipc)), names, fontsize=8)
        a2.set_yscale("log")
        a2.set_ylabel("round trip (µs, log)")
        a2.set_title("The rings alone, 64 B: sleeping vs spinning waits")
        a2.legend(fontsize=8)
        a2.grid(axis="y", alpha=0.3)
    qs = ("p50_us", "p99_us", "p999_us")
    for i, q in enumerate(qs):
        ax.bar([j + (i - 1) * 0.27 for j in range(len(lp))], [lt[p][q]["median"] for p in lp], 0.27,
               label=q.replace("_us", "").replace("p999", "p99.9"))
    ax.set_xticks(range(len(lp)), [lnames[p] for p in lp], fontsize=7, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel("round trip (µs, log)")
    ax.set_title("Round trip of one tiny job, idle one-worker pool")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(charts, "latency.png"), dpi=100)
    plt.close(fig)
    head.append(("Round trip, idle pool, p50 / p99", f"{lt['ringmaster']['p50_us']['median']:.3g} µs / "
                 f"{lt['ringmaster']['p99_us']['median']:.3g} µs",
                 f"pipe pool {lt['pipe']['p50_us']['median']:.3g} µs, message_queue pool "
                 f"{lt['mq']['p50_us']['median']:.3g} µs, Pool.apply {lt['pool1']['p50_us']['median']:.3g} µs (p50)"))

    # --- restart
    r = res["restart"]
    rep = r["replacement"]
    p50s = sorted(x["p50_ms"] for x in rep)
    p99s = sorted(x["p99_ms"] for x in rep)
    base = sorted(x["baseline_p50_ms"] for x in rep)
    mid = len(rep) // 2
    w("### Restart")
    w("")
    w(f"A job SIGKILLs its worker (one-worker pool, restart backoff off): time from the crash's result to "
      f"status() showing the replacement ready, polled every 20 µs; {int(rep[0]['samples'])} crashes per run. "
      f"Median over the runs (min–max of the runs' p50): p50 **{p50s[mid]:.3g} ms** ({p50s[0]:.3g}–{p50s[-1]:.3g}), "
      f"p99 {p99s[mid]:.3g} ms; the same poll after a job that did not crash: {base[mid]:.3g} ms.")
    w("")
    w(f"Throughput while jobs crash their worker: {r['crash_jobs']} tiny jobs on 2 workers, each attempt killing its "
      "worker (SIGKILL) with the given probability; every job is retried until it succeeds and every result is "
      "checked (backoff off, so this times the restart machinery, not a policy). The Python pools, tried in the "
      f"same run with one job that SIGKILLs its worker: `multiprocessing.Pool`: {r['python']['pool']}; "
      f"{r['python']['pool_after']}. `ProcessPoolExecutor`: {r['python']['ppe']}; {r['python']['ppe_after']}. "
      "The C++ pipe and message_queue pools, built the obvious way, have no restart at all.")
    w("")
    w("| Jobs crashing | jobs/s | restarts | vs no crashes |")
    w("|---:|---:|---:|---:|")
    for k, v in r["crash"].items():
        w(f"| {k}% | {spread(v['jobs_per_s'])} | {v['restarts']['median']:.0f} | "
          f"{v['jobs_per_s']['median'] / r['crash']['0']['jobs_per_s']['median']:.2f}× |")
    w("")
    w("![throughput while workers crash](charts/restart.png)")
    w("")
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = list(r["crash"])
    ax.bar([f"{k}%" for k in ks], [r["crash"][k]["jobs_per_s"]["median"] for k in ks], color=COLORS["ringmaster"],
           yerr=[[r["crash"][k]["jobs_per_s"]["median"] - r["crash"][k]["jobs_per_s"]["min"] for k in ks],
                 [r["crash"][k]["jobs_per_s"]["max"] - r["crash"][k]["jobs_per_s"]["median"] for k in ks]], capsize=3)
    ax.set_xlabel("share of job attempts that kill their worker")
    ax.set_ylabel("jobs/s")
    ax.set_yscale("log")
    ax.set_title(f"ringmaster, 2 workers; restart p50 {p50s[mid]:.2g} ms")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(charts, "restart.png"), dpi=100)
    plt.close(fig)
    head.append(("Crash to replacement ready, p50", f"{p50s[mid]:.3g} ms",
                 f"tiny-job throughput with 10% of attempts crashing: "
                 f"{r['crash']['10']['jobs_per_s']['median'] / r['crash']['0']['jobs_per_s']['median']:.2f}× of no crashes"))

    # --- memory
    if "memory" in res:
        mm = res["memory"]
        w("### Memory")
        w("")
        w("Supervisor RSS (the benchmark process, after 20,000 jobs) and per-worker RSS and PSS (PSS shares "
          "pages with the processes it shares them with: what a worker really adds) against the number of workers:")
        w("")
        w("| Workers | supervisor RSS | per-worker RSS | per-worker PSS | process before the supervisor |")
        w("|---:|---:|---:|---:|---:|")
        for k, v in mm["workers"].items():
            w(f"| {k} | {kib(v['supervisor_rss_kb']['median'])} | {kib(v['worker_rss_kb']['median'])} | "
              f"{kib(v['worker_pss_kb']['median'])} | {kib(v['process_rss_before_kb']['median'])} |")
        w("")
        w("Supervisor memory per queued job (64-byte payloads, one worker held busy, prefetch 1, max_pending "
          "above the count): the RSS growth divided by the jobs queued.")
        w("")
        w("| Jobs queued | bytes per queued job |")
        w("|---:|---:|")
        for k, v in mm["queued"].items():
            w(f"| {int(k):,} | {spread(v, lambda x: f'{x:.0f}')} |")
        w("")
        st = mm["stream"]
        sk = sorted(st, key=int)
        size = int(st[sk[0]]["size"])
        grow = (st[sk[-1]]["peak_rss_kb"] - st[sk[-1]]["rss_before_kb"]) / max(1, st[sk[0]]["peak_rss_kb"] - st[sk[0]]["rss_before_kb"])
        w(f"Jobs of {size_name(size)} submitted as fast as `submit()` takes them, through the default max_pending (the "
          f"bounded queue), 2 workers, every result checked: {int(sk[-1]) // int(sk[0])}× the jobs took {grow:.2f}× the "
          "supervisor's peak RSS growth (peak RSS of the whole process; before: RSS when the process started).")
        w("")
        w("| Jobs submitted | max_pending | peak RSS | RSS before | jobs × payload | time |")
        w("|---:|---:|---:|---:|---:|---:|")
        for k in sk:
            v = st[k]
            w(f"| {int(k):,} | {int(v['max_pending']):,} | {kib(v['peak_rss_kb'])} | {kib(v['rss_before_kb'])} | "
              f"{kib(int(k) * size / 1024)} | {v['seconds']:.2f} s |")
        c = mm["cli_stream"]
        w("")
        w(f"`ringmaster run` streaming a job file of {c['jobs']:,} echo jobs ({c['file_bytes'] / 2**20:.0f} MiB, "
          f"64-byte payloads) to a result file, against Python's `Pool.imap_unordered(chunksize=1024)` over the "
          "same file: peak RSS (VmHWM, polled) of the parent process, its workers not counted, one run each.")
        w("")
        w("| Runner | peak RSS | time |")
        w("|---|---:|---:|")
        w(f"| ringmaster run | {kib(c['ringmaster']['peak_rss_kb'])} | {c['ringmaster']['seconds']:.2f} s |")
        w(f"| Python Pool | {kib(c['python']['peak_rss_kb'])} | {c['python']['seconds']:.2f} s |")
        w("")
        w("![memory](charts/memory.png)")
        w("")
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        ks = [int(k) for k in mm["workers"]]
        for key, label in (("supervisor_rss_kb", "supervisor RSS"), ("worker_rss_kb", "per-worker RSS"),
                           ("worker_pss_kb", "per-worker PSS")):
            a1.plot(ks, [mm["workers"][str(k)][key]["median"] / 1024 for k in ks], marker="o", label=label)
        a1.set_xlabel("workers")
        a1.set_ylabel("MiB")
        a1.set_title("RSS against workers")
        a1.legend(fontsize=8)
        a1.grid(alpha=0.3)
        qk = [int(k) for k in mm["queued"]]
        a2.plot(qk, [mm["queued"][str(k)]["median"] * k / 2**20 for k in qk], marker="o", label="queued jobs' RSS")
        a2.plot(qk, [64 * k / 2**20 for k in qk], ls="--", label="queued × 64 B payload")
        a2.plot([int(k) for k in sk], [(st[k]["peak_rss_kb"] - st[k]["rss_before_kb"]) / 1024 for k in sk],
                marker="s", label=f"{size_name(size)} jobs streamed through max_pending: peak growth")
        a2.plot([int(k) for k in sk], [int(k) * size / 2**20 for k in sk], ls=":", label=f"jobs × {size_name(size)} payload")
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("jobs")
        a2.set_ylabel("MiB (log)")
        a2.set_title("Supervisor memory against jobs")
        a2.legend(fontsize=8)
        a2.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(charts, "memory.png"), dpi=100)
        plt.close(fig)
        big = sk[-1]
        head.append((f"Peak RSS streaming {int(big):,} jobs of {size_name(size)} through max_pending "
                     f"({kib(int(big) * size / 1024)} of payloads)",
                     kib(st[big]["peak_rss_kb"]),
                     f"`ringmaster run` on a {c['jobs']:,}-job file: {kib(c['ringmaster']['peak_rss_kb'])}, "
                     f"Python Pool: {kib(c['python']['peak_rss_kb'])}"))

    h = [f"Measured by `bench/run` on {res['date']}, {m['cores']} cores ({m['cpu']}), load average "
         f"{' '.join(m['load_start'])}; absolute figures only indicative, ratios measured in the same run.", "",
         "| What | ringmaster | Against the peers (same run; n× = ringmaster's figure ÷ the peer's) |", "|---|---|---|"]
    h += [f"| {a} | {b} | {c} |" for a, b, c in head]
    md[8:8] = ["### Headline", ""] + h + [""]
    with open(os.path.join(out, "suite.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(out, "headline.md"), "w") as f:
        f.write("\n".join(h) + "\n")
