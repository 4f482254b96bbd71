#!/usr/bin/env python3
"""Sync jobs (issue #5): ferry's S3 -> S3 sync against `aws s3 sync` and `rclone sync`, same data set,
same moto, one run; prints the ratios.

How to rerun (a local stack must be up, e.g. `make dev`, or `infra/local/scripts/run.sh up`):

    source infra/local/scripts/env.sh && source "$FERRY_STATE_DIR/function-env.sh"
    apt-get install -y rclone                                   # Debian rclone
    python3 -m venv ~/.cache/ferry/venv-awscli && ~/.cache/ferry/venv-awscli/bin/pip install awscli botocore
    ~/.cache/ferry/venv-awscli/bin/python bench/sync_s3.py      # botocore: awscli >= 1.46 vendors its own copy

Scenarios (data set: 20 objects of 10 MiB + 200 of 100 KiB = 219.5 MiB):
  1. bucket -> bucket on the stack's moto: ferry run-now until the run ends (HTTP API, SQS, pump, worker),
     vs `aws s3 sync`, vs `rclone sync`, all at 16 concurrent transfers; plus the store's own ceiling
     (16 threads calling CopyObject directly, no bookkeeping).
  2. foreign store: the same data on a second moto server; ferry (ranged GET + PUT through the worker)
     vs `rclone sync` between the two endpoints; plus the two stores' ceiling (16 threads, each a
     keep-alive connection to both, GET of a whole object then its PUT, bodies neither signed nor hashed:
     moto checks no signatures).
Each tool runs REPEAT times (BENCH_REPEAT, default 2) into a fresh destination; the best time counts.
BENCH_ONLY=bucket or BENCH_ONLY=foreign runs one scenario; BENCH_TOOLS=ferry,rclone runs only the tools
whose label starts with one of those (for profiling one side). BENCH_FERRY_CONCURRENCY sets the
ferry job's `concurrency` (copies in flight per worker invocation; default 16).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

import botocore.session
from botocore.config import Config

MIB = 1024 * 1024
BIG, SMALL = 20, 200
CONCURRENCY = 16
# The job's `concurrency` (copies in flight per copy message, i.e. per worker invocation; a run's
# groups run on several instances at once). BENCH_FERRY_CONCURRENCY changes it for ferry alone.
FERRY_CONCURRENCY = int(os.environ.get("BENCH_FERRY_CONCURRENCY", str(CONCURRENCY)))
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
ONLY = os.environ.get("BENCH_ONLY", "")  # "bucket" or "foreign": one scenario
TOOLS = [t for t in os.environ.get("BENCH_TOOLS", "").split(",") if t]  # e.g. "ferry": only those
MOTO = os.environ["AWS_ENDPOINT_URL"]
API = os.environ.get("FERRY_API_URL", "http://127.0.0.1:9000")
CACHE = os.environ.get("FERRY_CACHE", os.path.expanduser("~/.cache/ferry"))
AWS = os.path.join(CACHE, "venv-awscli", "bin", "aws")
FERRY_LOCAL = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "ferry-local")


TABLE = os.environ.get("TABLE_NAME", "FerryTable")
DYNAMO = botocore.session.get_session().create_client(
    "dynamodb", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", MOTO), region_name="us-east-1",
    aws_access_key_id="test", aws_secret_access_key="test")


def client(endpoint):
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=64))


def fill(s3, bucket):
    s3.create_bucket(Bucket=bucket)
    jobs = [(f"big/{i:02}.bin", os.urandom(10 * MIB)) for i in range(BIG)]
    jobs += [(f"small/{i:03}.bin", os.urandom(100 * 1024)) for i in range(SMALL)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), jobs))
    return sum(len(b) for _, b in jobs)


def count(s3, bucket):
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        n += len(page.get("Contents", []))
    return n


def http(method, path, body=None, token=None):
    req = urllib.request.Request(API + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read() or b"null")


def login():
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write(uuid.uuid4().hex)
        pw_file = f.name
    subprocess.run([FERRY_LOCAL, "create-user", name, "--password-file", pw_file], check=True,
                   stdout=subprocess.DEVNULL)
    token = http("POST", "/login", {"username": name, "password": open(pw_file).read()})["access_token"]
    os.unlink(pw_file)
    return token


def ferry(token, connector, dst):
    job = http("POST", "/api/v1/scheduler/create_job", {
        "job_name": "bench", "connector_type": "S3", "schedule": "daily",
        "connector_config": connector, "destination": {"bucket": dst, "prefix": ""},
        "concurrency": FERRY_CONCURRENCY}, token)["job_id"]
    t0 = time.monotonic()
    run = http("POST", f"/api/v1/jobs/{job}/run", None, token)["run_id"]
    # The end is watched on the run's own item (what the API reads), every 20 ms: polling the API
    # through cargo lambda watch would cost the 2 cores more than the worker does. The API is asked
    # once the item says the run ended.
    key = {"pk": {"S": f"JOB#{job}"}, "sk": {"S": f"RUN#{run}"}}
    while True:
        item = DYNAMO.get_item(TableName=TABLE, Key=key, ConsistentRead=True,
                               ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"})
        if item.get("Item", {}).get("status", {}).get("S") not in (None, "starting", "running"):
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    r = next(r for r in http("GET", f"/api/v1/jobs/{job}/runs")["runs"] if r["run_id"] == run)
    assert r["status"] == "completed", r
    return elapsed


def timed(cmd, env=None):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def aws_sync(src, dst):
    cfg = tempfile.NamedTemporaryFile("w", delete=False)
    cfg.write(f"[default]\ns3 =\n  max_concurrent_requests = {CONCURRENCY}\n")
    cfg.close()
    env = dict(os.environ, AWS_CONFIG_FILE=cfg.name)
    return timed([AWS, "s3", "sync", f"s3://{src}", f"s3://{dst}", "--endpoint-url", MOTO,
                  "--only-show-errors"], env)


def rclone_env(**remotes):
    env = dict(os.environ)
    # rclone 1.60's AWS SDK refuses AWS_CA_BUNDLE with its own HTTP transport; the endpoints are http.
    env.pop("AWS_CA_BUNDLE", None)
    for name, endpoint in remotes.items():
        for k, v in {"TYPE": "s3", "PROVIDER": "Other", "ENDPOINT": endpoint, "ACCESS_KEY_ID": "test",
                     "SECRET_ACCESS_KEY": "test", "REGION": "us-east-1",
                     "FORCE_PATH_STYLE": "true"}.items():
            env[f"RCLONE_CONFIG_{name.upper()}_{k}"] = v
    return env


def rclone_sync(src, dst, env):
    return timed(["rclone", "sync", src, dst, "--transfers", str(CONCURRENCY), "--checkers",
                  str(CONCURRENCY), "--s3-chunk-size", "10M", "--s3-upload-cutoff", "200M"], env)


def ceiling(s3, src, dst):
    s3.create_bucket(Bucket=dst)
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=src)
            for o in p.get("Contents", [])]
    t0 = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as ex:
        list(ex.map(lambda k: s3.copy_object(Bucket=dst, Key=k, CopySource={"Bucket": src, "Key": k}),
                    keys))
    return time.monotonic() - t0


BARE_AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
                             "SignedHeaders=host, Signature=0",
             "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}


def host_port(url):
    host, port = url.split("//", 1)[1].split(":")
    return host, int(port.rstrip("/"))


BARE_PUT = dict(BARE_AUTH, **{"Content-Type": "application/octet-stream"})


def bare_threads(items, connect, step):
    """A bare client's ceiling: CONCURRENCY threads take `items` from one queue; each opens its own
    keep-alive connections with `connect()` and runs `step(conns, item)`, which returns None or what
    failed. Returns the seconds taken; fails if any item failed."""
    it, lock, failed = iter(items), threading.Lock(), []

    def work():
        conns = connect()
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                return
            bad = step(conns, item)
            if bad is not None:
                failed.append(bad)

    t0 = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed, failed[:3]
    return time.monotonic() - t0


def foreign_ceiling(far, far_url, src, dst):
    """16 threads copying through themselves: GET the whole object from `far_url`, PUT it to the stack's
    moto, on keep-alive connections, with nothing else (no listing of the destination, no checks)."""
    keys = [o["Key"] for p in far.get_paginator("list_objects_v2").paginate(Bucket=src)
            for o in p.get("Contents", [])]

    def copy(conns, key):
        get, put = conns
        get.request("GET", f"/{src}/{key}", headers=BARE_AUTH)
        r = get.getresponse()
        body = r.read()
        put.request("PUT", f"/{dst}/{key}", body=body, headers=BARE_PUT)
        w = put.getresponse()
        w.read()
        return None if r.status == w.status == 200 else (key, r.status, w.status)

    return bare_threads(
        keys, lambda: (HTTPConnection(*host_port(far_url)), HTTPConnection(*host_port(MOTO))), copy)


def best(label, f, *args):
    if TOOLS and not any(label.startswith(t) for t in TOOLS):
        return float("nan")
    times = []
    for _ in range(REPEAT):
        times.append(f(*args))
    print(f"  {label:<44} best {min(times):7.2f} s   runs {', '.join(f'{t:.2f}' for t in times)}",
          flush=True)
    return min(times)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    s3 = client(MOTO)
    tag = uuid.uuid4().hex[:6]
    src = f"bench-src-{tag}"
    total = fill(s3, src)
    print(f"data set: {BIG} x 10 MiB + {SMALL} x 100 KiB = {total / MIB:.1f} MiB; "
          f"{CONCURRENCY} concurrent transfers everywhere; best of {REPEAT}; {os.cpu_count()} cores")
    token = login()
    fresh = iter(range(1000))

    def dst():
        name = f"bench-dst-{tag}-{next(fresh)}"
        s3.create_bucket(Bucket=name)
        return name

    if ONLY != "foreign":
        bucket_to_bucket(s3, src, tag, token, fresh, dst)
    if ONLY != "bucket":
        foreign(src, token, dst)


def bucket_to_bucket(s3, src, tag, token, fresh, dst):
    print("1. bucket -> bucket, same moto")
    t_ferry = best("ferry (run now -> run completed)", lambda: ferry(token, {"bucket_name": src}, dst()))
    t_aws = best("aws s3 sync", lambda: aws_sync(src, dst()))
    env = rclone_env(m=MOTO)
    t_rclone = best("rclone sync", lambda: rclone_sync(f"m:{src}", f"m:{dst()}", env))
    t_ceiling = best("store ceiling (16 threads of CopyObject)",
                     lambda: ceiling(s3, src, f"bench-dst-{tag}-{next(fresh)}"))
    peer = min((t for t in (t_aws, t_rclone) if t == t), default=float("nan"))  # a skipped tool is nan
    print(f"  ratio vs the better peer: {peer / t_ferry:.2f}x (goal >= 1.3x); "
          f"ferry at {t_ceiling / t_ferry:.0%} of the store's ceiling")


def foreign(src, token, dst):
    print("2. foreign store (second moto) -> stack moto")
    port = free_port()
    moto = subprocess.Popen([os.path.join(CACHE, "bin", "moto_server"), "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        far_url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(far_url + "/moto-api/", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        far = client(far_url)
        fill(far, src)
        connector = {"bucket_name": src, "endpoint_url": far_url, "region": "us-east-1",
                     "access_key_id": "test", "secret_access_key": "test"}
        f_ferry = best("ferry (ranged GET + PUT through the worker)",
                       lambda: ferry(token, connector, dst()))
        env = rclone_env(far=far_url, m=MOTO)
        f_rclone = best("rclone sync far: -> m:", lambda: rclone_sync(f"far:{src}", f"m:{dst()}", env))
        f_ceiling = best("ceiling (16 threads of bare GET + PUT)",
                         lambda: foreign_ceiling(far, far_url, src, dst()))
        print(f"  ratio vs rclone: {f_rclone / f_ferry:.2f}x (goal >= 1.3x); ferry at "
              f"{f_ceiling / f_ferry:.0%} of the stores' ceiling, rclone at {f_ceiling / f_rclone:.0%}")
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    sys.exit(main())
