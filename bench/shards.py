#!/usr/bin/env python3
"""bench/shards: the balance of `--shards N` (see the header of bench/shards)."""

import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", "work")
RESULTS = os.path.join(ROOT, "bench", "results")
BUCKET = os.environ.get("MEDIASHIFT_S3_BUCKET", "media")


def log(msg):
    print(f"bench/shards: {msg}", file=sys.stderr, flush=True)


def gen(kind, scale, seed):
    d = os.path.join(WORK, f"corpus-{kind}-{seed}-{scale:g}")
    subprocess.run([os.path.join(ROOT, "scripts", "gen-media"), kind, d, "--scale", str(scale),
                    "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
    return d


def skewed(files):
    """A third of the files at one size (pairs of identical content among
    them), the rest at sizes spread as a shop's are."""
    d = os.path.join(WORK, f"shards-skewed-{files}")
    done = d + ".made"
    if os.path.exists(done):
        return d
    for i in range(files):
        sub = os.path.join(d, f"{i % 97:02d}")
        os.makedirs(sub, exist_ok=True)
        if i % 3 == 0:
            size, seed = 4096, i // 6  # same size; each content twice
        else:
            size, seed = 1000 + (i * 7919) % 200_000, i + 1_000_000
        block = hashlib.sha256(str(seed).encode()).digest()
        data = (block * (size // 32 + 1))[:size]
        with open(os.path.join(sub, f"img-{i:07d}.jpg"), "wb") as f:
            f.write(data)
    open(done, "w").close()
    return d


def split(tree, n):
    r = subprocess.run([os.environ["BENCH_MEDIASHIFT"], "plan", tree, f"s3://{BUCKET}/shards-bench/",
                        "--shards", str(n), "--json", "--no-progress"],
                       capture_output=True, text=True)
    if r.returncode not in (0, 1):
        log(f"plan failed on {tree}: {r.stderr.strip()}")
        sys.exit(1)
    s = json.loads(r.stdout)["sharding"]
    fair = s["tree"]["files"] / n
    return {
        "shards": n,
        "files": s["tree"]["files"],
        "bytes": s["tree"]["bytes"],
        "shares": s["shares"],
        "imbalance_files": s["imbalance"],
        "imbalance_bytes": round(max(x["bytes"] for x in s["shares"]) * n / max(s["tree"]["bytes"], 1), 3),
        "smallest_share_of_fair": round(min(x["files"] for x in s["shares"]) / fair, 3) if fair else None,
        "crowded_sizes": s["crowded_sizes"],
    }


def main():
    smoke = "--smoke" in sys.argv
    scale = 0.05 if smoke else 1.0
    trees = [
        ("small", gen("small", scale, 42)),
        ("mixed", gen("mixed", scale, 42)),
        ("plan-1m at 100,000" if not smoke else "plan-1m at 5,000",
         gen("plan-1m", 0.005 if smoke else 0.1, 7)),
        ("skewed (1/3 of the files at one size)", skewed(3000 if smoke else 60_000)),
    ]
    rows = []
    for name, tree in trees:
        for n in (3, 8):
            r = split(tree, n)
            r["corpus"] = name
            rows.append(r)
            log(f"{name:<40} N={n}: {r['files']:>7} files, largest {r['imbalance_files']:.2f}x "
                f"(bytes {r['imbalance_bytes']:.2f}x), smallest {r['smallest_share_of_fair']:.2f}x the fair "
                f"share, {r['crowded_sizes']} crowded size(s)")
    md = ["# Shard balance: `mediashift plan --shards N`" + (" (smoke run)" if smoke else ""), "",
          "Largest and smallest shard (files) over the fair share, 1.00 = even; bytes likewise for the largest. "
          "A size shared by more than max(256, files / (32 N)) files is crowded and split by partial hash.", "",
          "| corpus | files | N | largest (files) | smallest (files) | largest (bytes) | crowded sizes | files per shard |",
          "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['corpus']} | {r['files']:,} | {r['shards']} | {r['imbalance_files']:.2f} | "
                  f"{r['smallest_share_of_fair']:.2f} | {r['imbalance_bytes']:.2f} | {r['crowded_sizes']} | "
                  + ", ".join(f"{x['files']:,}" for x in r["shares"]) + " |")
    outdir = WORK if smoke else RESULTS
    stem = "shards-smoke" if smoke else "shards"
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, stem + ".json"), "w") as f:
        json.dump({"mode": "smoke" if smoke else "full", "runs": rows}, f, indent=2)
        f.write("\n")
    with open(os.path.join(outdir, stem + ".md"), "w") as f:
        f.write("\n".join(md) + "\n")
    log(f"wrote {os.path.relpath(os.path.join(outdir, stem), ROOT)}.{{md,json}}")
    bad = [r for r in rows if r["imbalance_files"] > 1.5 and r["files"] >= 1000]
    if bad and not smoke:
        log("FAIL: a shard holds more than 1.5x its fair share: " + ", ".join(f"{r['corpus']} N={r['shards']}" for r in bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
