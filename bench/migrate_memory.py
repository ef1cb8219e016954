#!/usr/bin/env python3
"""bench/migrate-memory: peak memory and time of migrate, first run and rerun
(see the header of bench/migrate-memory)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", "work")
RESULTS = os.path.join(ROOT, "bench", "results")
BUCKET = os.environ.get("MEDIASHIFT_S3_BUCKET", "media")
TARGET_RSS_MIB = 400
TARGET_RERUN_S = 40
PHASE = re.compile(r"^\s*([\d.]+)s\s+DEBUG\s+(.+?) done: RSS (\d+) MiB, peak (\d+) MiB")


def log(msg):
    print(f"bench/migrate-memory: {msg}", file=sys.stderr, flush=True)


def tree(n):
    """The plan-1m tree cut to n files (shared with bench/plan-memory)."""
    d = os.path.join(WORK, f"plan-{n}")
    subprocess.run([os.path.join(ROOT, "scripts", "gen-media"), "plan-1m", d, "--scale", str(n / 1_000_000),
                    "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
    return d


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError as e:
        log(f"cannot drop the page cache ({e}): no cold rerun")
        return False


def migrate(src, prefix, state, maps, name):
    """One timed migrate; its figures and phases."""
    timing = os.path.join(WORK, f"migrate-memory-{name}.time")
    cmd = ["/usr/bin/time", "-f", "%M %e %U %S", "-o", timing, os.environ["BENCH_MEDIASHIFT"], "-v", "migrate",
           src, f"s3://{BUCKET}/{prefix}", "--state", state, "--map-dir", maps, "--json", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        log(f"{name}: migrate exited {r.returncode}:\n{r.stderr[-3000:]}")
        sys.exit(1)
    doc = json.loads(r.stdout)
    rss_kib, wall, user, sys_ = open(timing).read().split()
    phases = []
    for line in r.stderr.splitlines():
        m = PHASE.match(line)
        if m:
            phases.append({"phase": m.group(2), "at_s": round(float(m.group(1)), 2),
                           "rss_mib": int(m.group(3)), "peak_mib": int(m.group(4))})
    if doc["failed"]:
        log(f"{name}: {len(doc['failed'])} files failed: {doc['failed'][:3]}")
        sys.exit(1)
    return {
        "run": name,
        "files": doc["files_total"],
        "uploaded": doc["objects_uploaded"],
        "map_entries": doc["map_entries"],
        "wall_s": float(wall),
        "cpu_s": round(float(user) + float(sys_), 2),
        "peak_rss_mib": round(int(rss_kib) / 1024, 1),
        "phases": phases,
    }


def main():
    args = sys.argv[1:]
    smoke = "--smoke" in args
    sizes = [1_000, 10_000] if smoke else [100_000, 1_000_000]
    if "--sizes" in args:
        sizes = [int(n) for n in args[args.index("--sizes") + 1].split(",")]
    stamp = time.strftime("%Y%m%d%H%M%S")
    rows = []
    for n in sizes:
        src = tree(n)
        run_dir = os.path.join(WORK, f"migrate-memory-{n}")
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
        prefix = f"migrate-memory-{stamp}-{n}/"
        state, maps = os.path.join(run_dir, "state"), os.path.join(run_dir, "maps")
        log(f"{n:,} files: first run (uploads everything) ...")
        first = migrate(src, prefix, state, maps, f"{n}-first")
        log(f"{n:,} files: first run {first['wall_s']} s, peak RSS {first['peak_rss_mib']} MiB; rerun ...")
        rerun = migrate(src, prefix, state, maps, f"{n}-rerun")
        log(f"{n:,} files: rerun {rerun['wall_s']} s, peak RSS {rerun['peak_rss_mib']} MiB")
        cold = None
        if not smoke and drop_caches():
            cold = migrate(src, prefix, state, maps, f"{n}-cold-rerun")
            log(f"{n:,} files: cold rerun {cold['wall_s']} s, peak RSS {cold['peak_rss_mib']} MiB")
        rows.append({"files": n, "first": first, "rerun": rerun, "cold_rerun": cold})
        shutil.rmtree(run_dir, ignore_errors=True)

    small, big = rows[0], rows[-1]
    growth = {k: round((big[k]["peak_rss_mib"] - small[k]["peak_rss_mib"]) * 1024 * 1024
                       / max(1, big["files"] - small["files"])) for k in ("first", "rerun")}
    doc = {"mode": "smoke" if smoke else "full", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "build": "debug" if smoke else "release", "cores": os.cpu_count(), "rows": rows,
           "growth_bytes_per_file": growth,
           "targets": {"peak_rss_mib_at_1m": TARGET_RSS_MIB, "rerun_s_at_1m": TARGET_RERUN_S}}
    out_dir = WORK if smoke else RESULTS
    name = "migrate-memory-smoke" if smoke else "migrate-memory"
    if "--results" in args:
        name = args[args.index("--results") + 1]
    base = os.path.join(out_dir, name)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=2)
    with open(base + ".md", "w") as f:
        f.write(markdown(doc))
    log(f"wrote {base}.{{md,json}}")


def markdown(doc):
    md = [f"# mediashift migrate: memory and time by tree size ({doc['mode']} run, {doc['date']})", "",
          f"{doc['build']} build, {doc['cores']} cores, SeaweedFS on 127.0.0.1. Trees: scripts/gen-media plan-1m "
          "(files of 100 B to 2 KB, 10% duplicates). Wall, CPU (user+sys) and peak RSS from GNU time; "
          "phases from `-v` (seconds since start, RSS at the phase's end).", "",
          "| files | run | wall (s) | CPU (s) | peak RSS (MiB) | peak RSS per file (B) |",
          "|---:|---|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        for k in ("first", "rerun", "cold_rerun"):
            x = r[k]
            if x is None:
                continue
            per = round(x["peak_rss_mib"] * 1024 * 1024 / r["files"])
            md.append(f"| {r['files']:,} | {k.replace('_', ' ')} | {x['wall_s']} | {x['cpu_s']} | "
                      f"{x['peak_rss_mib']} | {per} |")
    g = doc["growth_bytes_per_file"]
    md += ["", f"Growth of peak RSS per file between the two trees: first run **{g['first']} B**, "
               f"rerun **{g['rerun']} B**.", ""]
    if doc["mode"] == "full":
        big = doc["rows"][-1]
        peak = max(big["first"]["peak_rss_mib"], big["rerun"]["peak_rss_mib"])
        md += [f"At {big['files']:,} files: peak RSS {peak} MiB (target <= {TARGET_RSS_MIB}: "
               f"{'met' if peak <= TARGET_RSS_MIB else '**not met**'}); warm rerun {big['rerun']['wall_s']} s "
               f"(target <= {TARGET_RERUN_S}: {'met' if big['rerun']['wall_s'] <= TARGET_RERUN_S else '**not met**'})"
               + (f", cold rerun {big['cold_rerun']['wall_s']} s." if big["cold_rerun"] else "."), ""]
    md += ["Phases (the largest tree):", "", "| run | phase | ended at (s) | RSS (MiB) | peak so far (MiB) |",
           "|---|---|---:|---:|---:|"]
    big = doc["rows"][-1]
    for k in ("first", "rerun", "cold_rerun"):
        if big[k] is None:
            continue
        for p in big[k]["phases"]:
            md.append(f"| {k.replace('_', ' ')} | {p['phase']} | {p['at_s']} | {p['rss_mib']} | {p['peak_mib']} |")
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
