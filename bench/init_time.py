#!/usr/bin/env python3
"""Cold-start cost of every ferry function: release binary size, and init time = process start until the
binary asks the Lambda Runtime API for its first event (`GET /2018-06-01/runtime/invocation/next`), which
a lambda_runtime binary does only after main() has built its config, SDK clients and (for HTTP functions)
read the JWT key from Secrets Manager.

Peer, measured in the same run: `init-floor`, a lambda_runtime function with no SDK and no config (the
floor any Rust Lambda pays). The ratio printed is ferry / floor.

Binaries: the deploy artifacts `sam build` makes (cargo lambda build --release, x86_64, zig linker) in
$CARGO_TARGET_DIR/lambda/<name>/bootstrap when present, else target/release/<name>; BINARIES=<profile dir>
(e.g. release) takes target/<profile dir>/<name> instead. The floor is built the same way (`cargo lambda build --release -p init-floor`).

Run:  make up && python3 bench/init_time.py        (needs the local stack for the functions' env + secret)
"""
import http.server, json, os, socketserver, statistics, subprocess, sys, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RUNS = int(os.environ.get("RUNS", "15"))
FUNCTIONS = ["api-jobs", "api-scheduler", "api-loaders", "api-events", "api-transfers",
             "worker-sync", "worker-loader", "worker-loader-s3", "worker-ingest", "worker-transfer"]

first_poll = {}
lock = threading.Condition()

class Runtime(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            with lock:
                first_poll.setdefault(self.server.token, time.perf_counter())
                lock.notify_all()
            # Never hand out an event: the process is killed once timed.
            time.sleep(5)
        self.send_response(404); self.end_headers()
    def log_message(self, *a):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

def function_env():
    out = subprocess.run([os.path.join(TARGET, "debug", "ferry-local"), "env"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            env[k] = v.strip("'")
    return env

def runs_here(path):
    """An ELF binary for this machine's CPU (target/lambda holds arm64 ones after an arm64 build)."""
    machine = {"x86_64": 0x3E, "aarch64": 0xB7}.get(os.uname().machine)
    with open(path, "rb") as f:
        head = f.read(20)
    return len(head) == 20 and int.from_bytes(head[18:20], "little") == machine

def binary(name):
    profile = os.environ.get("BINARIES")
    if profile:
        return os.path.join(TARGET, profile, name)
    lam = os.path.join(TARGET, "lambda", name, "bootstrap")
    if os.path.exists(lam) and runs_here(lam):
        return lam
    return os.path.join(TARGET, "release", name)

def measure(name, binary, env, server):
    samples = []
    for i in range(RUNS):
        token = f"{name}-{i}"
        server.token = token
        e = dict(os.environ)
        e.update(env)
        e.update(AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
                 AWS_LAMBDA_FUNCTION_NAME=name, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
                 AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench",
                 RUST_LOG="error")
        start = time.perf_counter()
        p = subprocess.Popen([binary], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with lock:
            ok = lock.wait_for(lambda: token in first_poll, timeout=10)
        p.kill(); _, err = p.communicate()
        if not ok:
            sys.exit(f"{binary} never polled for an event: {err.decode()[-500:]}")
        samples.append((first_poll[token] - start) * 1000)
    return statistics.median(samples), max(samples)

def main():
    env = function_env()
    server = Server(("127.0.0.1", 0), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    floor_bin = binary("init-floor")
    print(f"binaries: {os.path.dirname(os.path.dirname(floor_bin))}")
    floor_med, _ = measure("init-floor", floor_bin, {}, server)
    rows = []
    for f in FUNCTIONS:
        b = binary(f)
        med, worst = measure(f, b, env, server)
        rows.append((f, med, worst, os.path.getsize(b) / 1e6))
    print(f"init-floor (peer: lambda_runtime, no SDK): median {floor_med:.1f} ms, size {os.path.getsize(floor_bin)/1e6:.2f} MB")
    print(f"{'function':<16}{'init median ms':>16}{'init max ms':>13}{'vs floor':>10}{'size MB':>9}  goal <25 ms, <10 MB")
    for f, med, worst, size in rows:
        ok = "ok" if med < 25 and size < 10 else "MISSES GOAL"
        print(f"{f:<16}{med:>16.1f}{worst:>13.1f}{med/floor_med:>9.1f}x{size:>9.2f}  {ok}")

if __name__ == "__main__":
    main()
