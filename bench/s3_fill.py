#!/usr/bin/env python3
"""Loaders (issue #3): the S3 loader's fill against `aws s3 cp --recursive` of an equal tree, same moto,
one run; prints objects/s of both and the ratio (goal >= 1.5x).

How to rerun (a local stack must be up: `make up`):

    source infra/local/scripts/env.sh && source "$FERRY_STATE_DIR/function-env.sh"
    python3 -m venv ~/.cache/ferry/venv-awscli && ~/.cache/ferry/venv-awscli/bin/pip install awscli
    ~/.cache/ferry/venv-awscli/bin/python bench/s3_fill.py      # needs botocore: run it with that venv

ferry: POST /s3/start_loader (crud false) and the clock stops when the loader's item says completed: the
whole path (API, SQS tick chain through the pump, worker-loader as run by cargo lambda watch, each file
generated with fake values and encoded by its format's library, parallel PUTs, progress saved per slice).
Layout: 1 bucket, depth 2, 4 folders per level (21 folders), FILES files per folder of SIZE bytes, json.
peer: the very files ferry wrote, downloaded to a temp dir beforehand (not timed), then
`aws s3 cp --recursive` into a fresh bucket of the same moto at the same concurrency (16) as ferry's PUTs.
Each side runs REPEAT times; the best time counts.
ceiling: the store's own, for context: 16 threads of bare PUTs (keep-alive HTTP, bodies read into
memory beforehand, no signing or hashing: moto does not check signatures) of the same files.
reference: `rclone copy` (Debian rclone, Go) of the same tree at the same concurrency, for context: a lean
uploader of ready-made files, i.e. near what this moto accepts; BENCH_RCLONE=0 skips it.
"""

from http.client import HTTPConnection
import os
import threading
import subprocess
import sys
import tempfile
import time
import uuid

from sync_s3 import AWS, DYNAMO, MOTO, TABLE, client, count, http, login, rclone_env, timed

FILES = int(os.environ.get("BENCH_FILES", "50"))  # per folder; 21 folders
SIZE = int(os.environ.get("BENCH_SIZE", "16384"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
CONCURRENCY = 16  # worker-loader's PUT_CONCURRENCY


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
    host, port = MOTO.split("//", 1)[1].split(":")
    auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
                             "SignedHeaders=host, Signature=0",
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Type": "application/octet-stream"}
    it = iter(files)
    lock = threading.Lock()
    failed = []

    def work():
        conn = HTTPConnection(host, int(port))
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                return
            conn.request("PUT", f"/{bucket}/{nxt[0]}", body=nxt[1], headers=auth)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                failed.append(r.status)

    t0 = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed, failed[:5]
    return time.monotonic() - t0


def rclone_copy(src_dir, bucket):
    return timed(["rclone", "copy", src_dir, f"m:{bucket}", "--transfers", str(CONCURRENCY),
                  "--checkers", str(CONCURRENCY), "--s3-no-check-bucket"], rclone_env(m=MOTO))


def main():
    token = login()
    s3 = client(MOTO)
    ferry_best, peer_best, objects, sample = None, None, 0, None
    for i in range(REPEAT):
        t, bucket, n = ferry(token)
        objects = n
        assert count(s3, bucket) == n, "ferry's bucket holds the reported count"
        print(f"  ferry run {i + 1}: {n} objects in {t:.2f} s ({n / t:.0f} objects/s)")
        ferry_best = t if ferry_best is None else min(ferry_best, t)
        sample = sample or bucket
    with tempfile.TemporaryDirectory() as tree:
        # The peer uploads exactly what ferry wrote (same keys, same bytes).
        subprocess.run([AWS, "s3", "cp", "--recursive", "--quiet", f"s3://{sample}", tree,
                        "--endpoint-url", MOTO], check=True)
        for i in range(REPEAT):
            dst = f"bench-cp-{uuid.uuid4().hex[:12]}"
            s3.create_bucket(Bucket=dst)
            t = aws_cp(tree, dst)
            assert count(s3, dst) == objects
            print(f"  aws s3 cp run {i + 1}: {objects} objects in {t:.2f} s ({objects / t:.0f} objects/s)")
            peer_best = t if peer_best is None else min(peer_best, t)
        ceiling_best = None
        for i in range(REPEAT):
            dst = f"bench-put-{uuid.uuid4().hex[:12]}"
            s3.create_bucket(Bucket=dst)
            t = bare_puts(tree, dst)
            assert count(s3, dst) == objects
            print(f"  ceiling (bare PUTs) run {i + 1}: {objects} objects in {t:.2f} s "
                  f"({objects / t:.0f} objects/s)")
            ceiling_best = t if ceiling_best is None else min(ceiling_best, t)
        rclone_best = None
        if os.environ.get("BENCH_RCLONE", "1") != "0":
            for i in range(REPEAT):
                dst = f"bench-rc-{uuid.uuid4().hex[:12]}"
                s3.create_bucket(Bucket=dst)
                t = rclone_copy(tree, dst)
                assert count(s3, dst) == objects
                print(f"  rclone copy run {i + 1}: {objects} objects in {t:.2f} s "
                      f"({objects / t:.0f} objects/s)")
                rclone_best = t if rclone_best is None else min(rclone_best, t)
    print(f"S3 fill, {objects} objects of {SIZE} bytes: ferry {objects / ferry_best:.0f} objects/s, "
          f"aws s3 cp --recursive {objects / peer_best:.0f} objects/s, "
          f"ratio {peer_best / ferry_best:.2f}x (goal >= 1.5x)")
    print(f"  store ceiling (bare PUTs) {objects / ceiling_best:.0f} objects/s: ferry at "
          f"{100 * ceiling_best / ferry_best:.0f} % of it; 1.5x aws s3 cp would be "
          f"{100 * 1.5 * ceiling_best / peer_best:.0f} % of it")
    if rclone_best:
        print(f"  reference rclone copy {objects / rclone_best:.0f} objects/s: ferry / rclone "
              f"{rclone_best / ferry_best:.2f}x; rclone / aws s3 cp {peer_best / rclone_best:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
