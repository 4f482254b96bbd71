#!/usr/bin/env python3
"""Loaders (issue #3): the S3 loader's fill against `aws s3 cp --recursive` of an equal tree, same moto,
one run; prints objects/s of both and the ratio (goal >= 1.5x).

How to rerun (a local stack must be up: `make up`):

    source infra/local/scripts/env.sh && source "$FERRY_STATE_DIR/function-env.sh"
    python3 -m venv ~/.cache/ferry/venv-awscli && ~/.cache/ferry/venv-awscli/bin/pip install awscli botocore
    ~/.cache/ferry/venv-awscli/bin/python bench/s3_fill.py      # botocore: awscli >= 1.46 vendors its own copy

ferry: POST /s3/start_loader (crud false) and the clock stops when the loader's item says completed: the
whole path (API, SQS tick chain through the pump, worker-loader-s3 as run by cargo lambda watch, each file
generated with fake values and encoded by its format's library, parallel PUTs, progress saved per slice).
Layout: 1 bucket, depth 2, 4 folders per level (21 folders), FILES files per folder of SIZE bytes, json.
peer: the very files ferry wrote, downloaded to a temp dir beforehand (not timed), then
`aws s3 cp --recursive` into a fresh bucket of the same moto at the same concurrency (16) as ferry's PUTs.
A warm-up fill (not counted) starts the functions and gives the files; then REPEAT rounds, each running
every tool once in turn. Printed: per-round ratios and their median, and the best of each tool.
ceiling: the store's own, for context: 16 threads of bare PUTs (keep-alive HTTP, bodies read into
memory beforehand, no signing or hashing: moto does not check signatures) of the same files.
reference: `rclone copy` (Debian rclone, Go) of the same tree at the same concurrency, for context: a lean
uploader of ready-made files, i.e. near what this moto accepts; BENCH_RCLONE=0 skips it.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from http.client import HTTPConnection

from sync_s3 import (AWS, BARE_PUT, DYNAMO, MOTO, TABLE, bare_threads, client, count, host_port, http,
                     login, rclone_env, timed)

FILES = int(os.environ.get("BENCH_FILES", "50"))  # per folder; 21 folders
SIZE = int(os.environ.get("BENCH_SIZE", "16384"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
CONCURRENCY = 16  # worker-loader-s3's PUT_CONCURRENCY (s3loader.rs)


def ferry(token):
    t0 = time.monotonic()
    started = http("POST", "/s3/start_loader", {
        "num_buckets": 1, "depth_level": 2, "num_folders_per_level": 4, "num_files_per_level": FILES,
        "file_size": SIZE, "file_format": "json", "crud": False}, token)
    lid = started["loader_id"]
    # Watched on the loader's own item every 20 ms (polling the API through cargo lambda watch would
    # cost the 2 cores more than the worker does); the API is asked once it says the fill ended.
    key = {"pk": {"S": f"LOADER#{lid}"}, "sk": {"S": "LOADER"}}
    while True:
        item = DYNAMO.get_item(TableName=TABLE, Key=key, ConsistentRead=True,
                               ProjectionExpression="phase").get("Item", {})
        if item.get("phase", {}).get("S") in ("completed", "failed", "stopped"):
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    view = http("GET", f"/loaders/{lid}")
    assert view["phase"] == "completed", view
    return elapsed, started["bucket"][0], view["current_count"]


def aws_cp(src_dir, bucket):
    cfg = tempfile.NamedTemporaryFile("w", delete=False)
    cfg.write(f"[default]\ns3 =\n  max_concurrent_requests = {CONCURRENCY}\n")
    cfg.close()
    env = dict(os.environ, AWS_CONFIG_FILE=cfg.name)
    try:
        return timed([AWS, "s3", "cp", "--recursive", "--quiet", src_dir, f"s3://{bucket}",
                      "--endpoint-url", MOTO], env)
    finally:
        os.unlink(cfg.name)


def bare_puts(src_dir, bucket):
    """The store's ceiling: every file PUT by 16 threads on keep-alive connections, nothing else."""
    files = []
    for root, _, names in os.walk(src_dir):
        for n in names:
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                files.append((os.path.relpath(path, src_dir), f.read()))

    def put(conn, file):
        conn.request("PUT", f"/{bucket}/{file[0]}", body=file[1], headers=BARE_PUT)
        r = conn.getresponse()
        r.read()
        return None if r.status == 200 else (file[0], r.status)

    return bare_threads(files, lambda: HTTPConnection(*host_port(MOTO)), put)


def rclone_copy(src_dir, bucket):
    return timed(["rclone", "copy", src_dir, f"m:{bucket}", "--transfers", str(CONCURRENCY),
                  "--checkers", str(CONCURRENCY), "--s3-no-check-bucket"], rclone_env(m=MOTO))


def fresh_bucket(s3, prefix):
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def main():
    token = login()
    s3 = client(MOTO)
    # Round 0 warms the functions up (a first invocation starts the processes) and gives the files
    # every peer uploads; it is not counted.
    t, sample, objects = ferry(token)
    assert count(s3, sample) == objects, "ferry's bucket holds the reported count"
    print(f"  warm-up: ferry {objects} objects in {t:.2f} s (not counted)")
    rclone = os.environ.get("BENCH_RCLONE", "1") != "0"
    rounds = []  # (ferry, aws s3 cp, ceiling, rclone) seconds
    with tempfile.TemporaryDirectory() as tree:
        # The peers upload exactly what ferry wrote (same keys, same bytes).
        subprocess.run([AWS, "s3", "cp", "--recursive", "--quiet", f"s3://{sample}", tree,
                        "--endpoint-url", MOTO], check=True)
        for i in range(REPEAT):
            t_ferry, bucket, n = ferry(token)
            assert n == objects and count(s3, bucket) == n, "ferry's bucket holds the layout"
            dst = fresh_bucket(s3, "bench-cp")
            t_aws = aws_cp(tree, dst)
            assert count(s3, dst) == objects
            dst = fresh_bucket(s3, "bench-put")
            t_ceiling = bare_puts(tree, dst)
            assert count(s3, dst) == objects
            t_rclone = float("nan")
            if rclone:
                dst = fresh_bucket(s3, "bench-rc")
                t_rclone = rclone_copy(tree, dst)
                assert count(s3, dst) == objects
            rounds.append((t_ferry, t_aws, t_ceiling, t_rclone))
            print(f"  round {i + 1}: objects/s ferry {objects / t_ferry:.0f}, aws s3 cp "
                  f"{objects / t_aws:.0f}, ceiling (bare PUTs) {objects / t_ceiling:.0f}, rclone copy "
                  f"{objects / t_rclone:.0f}; ferry / aws s3 cp {t_aws / t_ferry:.2f}x, ferry at "
                  f"{100 * t_ceiling / t_ferry:.0f} % of the ceiling", flush=True)
    best = [min(r[k] for r in rounds) for k in range(4)]
    ratios = sorted(r[1] / r[0] for r in rounds)
    median = statistics.median(ratios)
    print(f"S3 fill, {objects} objects of {SIZE} bytes, best of {REPEAT}: ferry "
          f"{objects / best[0]:.0f} objects/s, aws s3 cp --recursive {objects / best[1]:.0f} objects/s, "
          f"ratio {best[1] / best[0]:.2f}x; per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}, "
          f"median {median:.2f}x (goal >= 1.5x)")
    print(f"  store ceiling (bare PUTs) {objects / best[2]:.0f} objects/s: ferry at "
          f"{100 * best[2] / best[0]:.0f} % of it; 1.5x aws s3 cp would be "
          f"{100 * 1.5 * best[2] / best[1]:.0f} % of it")
    if rclone:
        print(f"  reference rclone copy {objects / best[3]:.0f} objects/s: ferry / rclone "
              f"{best[3] / best[0]:.2f}x; rclone / aws s3 cp {best[1] / best[3]:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
