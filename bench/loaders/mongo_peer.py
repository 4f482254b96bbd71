#!/usr/bin/env python3
"""The MongoDB fill peer of bench-loaders: a tuned pymongo loader.

Reads the documents (one JSON object per line, `_id` included) into memory first (not timed), then
times insert_many in batches of 1000 with ordered=False (no per-batch ordering wait), with THREADS
threads sharing one MongoClient (its connection pool), into a freshly dropped collection. Prints one
JSON line: {"count", "seconds", "docs_per_sec", "threads"}.

--wire is no driver at all, the server's ceiling for one call in flight: every batch is encoded before
the clock starts as the very OP_MSG insert pymongo sends (the insert command in section 0, the
documents as a section 1 sequence), and the timed loop only writes each message to one socket and
reads its reply (checked: ok 1 and n equal to the batch). A client can only tie with it.

    python mongo_peer.py --port 27017 --db bench --collection peer --threads 4 docs.jsonl
    python mongo_peer.py --port 27017 --db bench --collection peer --wire docs.jsonl
"""
import argparse
import json
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import bson
from pymongo import MongoClient

BATCH = 1000
OP_MSG = 2013


def op_msg(request_id, body, seq_name=None, seq_docs=()):
    """One OP_MSG: flags 0, section 0 (body), and optionally a section 1 document sequence."""
    payload = b"\x00" + bson.encode(body)
    if seq_name is not None:
        seq = seq_name.encode() + b"\x00" + b"".join(seq_docs)
        payload += b"\x01" + struct.pack("<i", 4 + len(seq)) + seq
    msg = struct.pack("<I", 0) + payload
    return struct.pack("<iiii", 16 + len(msg), request_id, 0, OP_MSG) + msg


def read_reply(sock):
    head = recv_exact(sock, 16)
    length, _, _, opcode = struct.unpack("<iiii", head)
    rest = recv_exact(sock, length - 16)
    if opcode != OP_MSG or rest[4] != 0:
        raise RuntimeError(f"unexpected reply opcode {opcode}")
    return bson.decode(rest[5:])


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("server closed the connection")
        buf += chunk
    return bytes(buf)


def wire(a, batches):
    """The bare-wire client: pre-encoded OP_MSG inserts, one in flight, on one socket."""
    msgs = [
        op_msg(i + 1, {"insert": a.collection, "ordered": False, "$db": a.db},
               "documents", [bson.encode(d) for d in b])
        for i, b in enumerate(batches)
    ]
    sock = socket.create_connection((a.host, a.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    inserted = 0
    for m, b in zip(msgs, batches):
        sock.sendall(m)
        r = read_reply(sock)
        if r.get("ok") != 1 or r.get("n") != len(b) or r.get("writeErrors"):
            raise RuntimeError(f"insert reply {r}")
        inserted += r["n"]
    secs = time.perf_counter() - t0
    sock.close()
    return inserted, secs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--collection", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--wire", action="store_true", help="bare OP_MSG client (the ceiling), no driver")
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

    if a.wire:
        inserted, secs = wire(a, batches)
        count = coll.count_documents({})
        coll.drop()
        print(json.dumps({"count": count, "inserted": inserted, "seconds": secs,
                          "docs_per_sec": len(docs) / secs, "threads": 0}))
        return

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
