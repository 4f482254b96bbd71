#!/usr/bin/env python3
"""The MongoDB fill peer of bench-loaders: a tuned pymongo loader.

Reads the documents (one JSON object per line, `_id` included) into memory first (not timed), then
times insert_many in batches of 1000 with ordered=False (no per-batch ordering wait), with THREADS
threads sharing one MongoClient (its connection pool), into a freshly dropped collection. Prints one
JSON line: {"count", "seconds", "docs_per_sec", "threads"}.

    python mongo_peer.py --port 27017 --db bench --collection peer --threads 4 docs.jsonl
"""
import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

from pymongo import MongoClient

BATCH = 1000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--collection", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("file")
    a = p.parse_args()

    with open(a.file, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    batches = [docs[i : i + BATCH] for i in range(0, len(docs), BATCH)]

    client = MongoClient(a.host, a.port, maxPoolSize=max(a.threads, 1) + 1)
    coll = client[a.db][a.collection]
    coll.drop()
    client[a.db].command("ping")

    def put(batch):
        return len(coll.insert_many(batch, ordered=False).inserted_ids)

    t0 = time.perf_counter()
    if a.threads <= 1:
        inserted = sum(put(b) for b in batches)
    else:
        with ThreadPoolExecutor(a.threads) as pool:
            inserted = sum(pool.map(put, batches))
    secs = time.perf_counter() - t0
    count = coll.count_documents({})
    coll.drop()
    print(json.dumps({"count": count, "inserted": inserted, "seconds": secs,
                      "docs_per_sec": len(docs) / secs, "threads": a.threads}))


if __name__ == "__main__":
    main()
