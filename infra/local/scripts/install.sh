#!/usr/bin/env bash
# Installs what the local stack needs, idempotently. Every cache lives outside the repo, under
# $FERRY_CACHE (default ~/.cache/ferry); a component that is already present (and works) is skipped.
#
#   mariadb    Debian mariadb-server + client (apt; needs root)
#   tools      venv-tools: moto server (on waitress), cargo-lambda + zig, pymongo, PyMySQL
#   sam        venv-sam: AWS SAM CLI + cfn-lint (own venv: SAM pins an older boto3 than moto wants)
#   dynamodb   DynamoDB Local from Maven Central (needs java 17+ and mvn)
#   ferretdb   FerretDB v1 built from the Go module (needs go >= 1.24)
#
# ONLY="tools sam" install.sh installs a subset.
set -euo pipefail
FERRY_CACHE="${FERRY_CACHE:-$HOME/.cache/ferry}"
mkdir -p "$FERRY_CACHE/bin"
log() { printf '[install] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

DYNAMODB_LOCAL_VERSION=3.3.1
FERRETDB_VERSION=v1.24.2
MOTO_VERSION=5.2.5
WAITRESS_VERSION=3.0.2
CARGO_LAMBDA_VERSION=1.9.2
SAM_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0

want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# step NAME FUNCTION: runs one install step and logs its wall time.
step() {
  local t0=$SECONDS
  "$2"
  log "$1: $((SECONDS - t0)) s"
}

apt_install() {
  [ "$(id -u)" = 0 ] || die "need root to apt-get install $* (or install it yourself)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_mariadb() {
  if command -v mariadbd >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1 &&
    command -v mariadb >/dev/null 2>&1; then
    log "mariadb: present"
    return
  fi
  log "mariadb: apt-get install mariadb-server mariadb-client"
  apt_install mariadb-server mariadb-client
}

# $FERRY_CACHE/bin/moto_server: moto's own WSGI application (what its `moto_server` script serves), with
# changes for speed and one fix:
# - It is served by waitress (one process, a thread pool, HTTP/1.1 keep-alive) instead of werkzeug's
#   development server, which closes the connection after every answer and starts a thread per
#   connection: bare 16 KiB PUTs from 16 threads ran at ~900 objects/s on werkzeug and ~1,300 on
#   waitress on this machine. Threads: FERRY_MOTO_THREADS (128; an SQS long poll holds one for its
#   whole wait). FERRY_MOTO_HTTP=werkzeug serves it as moto does (for comparisons, and for S3 metadata
#   names with an underscore: waitress drops such headers, moto's werkzeug handler keeps them).
# - Two costs moto pays on every request (py-spy of a moto under an S3 fill: a quarter of its busy time
#   in werkzeug's access log, written by every request thread under one lock, and a tenth listing moto's
#   package directory again to route the request) are gone; FERRY_MOTO_ACCESS_LOG=1 brings the log back.
# - moto 5.2 names the root element of a ListParts answer `ListPartsResponse`, where S3 says
#   `ListPartsResult` (botocore's model does not name the root, so moto falls back to
#   `<Operation>Response`); botocore does not look, the Rust SDK refuses the answer. The launcher
#   renames that root, as S3 names it.
# Rewritten on every install: it holds no repo path.
write_moto_launcher() {
  local venv="$1" out="$FERRY_CACHE/bin/moto_server"
  rm -f "$out"
  cat >"$out" <<EOF
#!$venv/bin/python3
import logging
import os
import sys

import moto
import moto.backends

if os.environ.get("FERRY_MOTO_ACCESS_LOG") != "1":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
_MODULES = tuple(moto.backends.list_of_moto_modules())
moto.backends.list_of_moto_modules = lambda: _MODULES

from moto.core import serialize as _serialize

_s3_answer = _serialize.S3Serializer._serialized_result_to_response


_S3_ROOTS = {"ListParts": "ListPartsResult"}


def _s3_answer_with_its_root(self, resp, result, shape, serialized_result):
    resp = _s3_answer(self, resp, result, shape, serialized_result)
    root = _S3_ROOTS.get(self.operation_model.name)
    wrong = f"{self.operation_model.name}Response"
    body = resp.get("body")
    if root and isinstance(body, str) and f"<{wrong}" in body:
        resp["body"] = body.replace(f"<{wrong}", f"<{root}", 1).replace(f"</{wrong}>", f"</{root}>", 1)
    return resp


_serialize.S3Serializer._serialized_result_to_response = _s3_answer_with_its_root

if os.environ.get("FERRY_MOTO_HTTP", "waitress") == "werkzeug":
    from moto.server import main

    sys.argv[0] = "moto_server"
    sys.exit(main())

import argparse
import signal

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

parser = argparse.ArgumentParser(prog="moto_server")
parser.add_argument("-H", "--host", default="127.0.0.1")
parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
args = parser.parse_args()
# moto builds the URLs it hands out (SQS queue URLs, presigned redirects) from MOTO_PORT.
os.environ.setdefault("MOTO_PORT", str(args.port))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if os.environ.get("FERRY_MOTO_ACCESS_LOG") == "1":
    logging.basicConfig(level=logging.INFO)
else:
    logging.getLogger("waitress").setLevel(logging.ERROR)
app = DomainDispatcherApplication(create_backend_app)
print(f"moto {moto.__version__} on waitress at http://{args.host}:{args.port}", flush=True)
waitress.serve(
    app,
    host=args.host,
    port=args.port,
    threads=int(os.environ.get("FERRY_MOTO_THREADS", "128")),
    connection_limit=1000,
    # Bodies up to 64 MiB stay in memory (waitress spools bigger ones to a temporary file).
    inbuf_overflow=64 << 20,
    outbuf_overflow=64 << 20,
    channel_timeout=300,
    ident="moto",
)
EOF
  chmod +x "$out"
}

install_tools_venv() {
  # moto (S3, SQS, Scheduler, Secrets Manager) and cargo-lambda + zig share one venv; SAM gets its own
  # because it pins an older boto3 than moto wants.
  local venv="$FERRY_CACHE/venv-tools"
  if [ -x "$venv/bin/moto_server" ] && [ -x "$venv/bin/cargo-lambda" ] &&
    "$venv/bin/python" -c 'import pymongo, pymysql, waitress' 2>/dev/null; then
    log "moto + cargo-lambda: present"
  else
    log "moto + cargo-lambda: pip install into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
      "cargo-lambda==$CARGO_LAMBDA_VERSION" ziglang pymongo PyMySQL "waitress==$WAITRESS_VERSION"
  fi
  write_moto_launcher "$venv"
  ln -sf "$venv/bin/cargo-lambda" "$FERRY_CACHE/bin/cargo-lambda"
  if [ -x "$venv/bin/python-zig" ]; then ln -sf "$venv/bin/python-zig" "$FERRY_CACHE/bin/python-zig"; fi
  # cargo lambda build (and so `sam build`) links with zig; the ziglang wheel ships the binary.
  local zig
  zig="$(ls "$venv"/lib/python3*/site-packages/ziglang/zig 2>/dev/null | head -n 1)"
  if [ -n "$zig" ]; then ln -sf "$zig" "$FERRY_CACHE/bin/zig"; fi
}

install_sam_venv() {
  local venv="$FERRY_CACHE/venv-sam"
  if [ -x "$venv/bin/sam" ] && [ -x "$venv/bin/cfn-lint" ]; then
    log "sam + cfn-lint: present"
  else
    log "sam + cfn-lint: pip install into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "aws-sam-cli==$SAM_VERSION" "cfn-lint==$CFN_LINT_VERSION"
  fi
  ln -sf "$venv/bin/sam" "$FERRY_CACHE/bin/sam"
  ln -sf "$venv/bin/cfn-lint" "$FERRY_CACHE/bin/cfn-lint"
}

install_dynamodb_local() {
  local dir="$FERRY_CACHE/dynamodb-local-$DYNAMODB_LOCAL_VERSION"
  local so="$dir/lib/libsqlite4java-linux-amd64.so"
  if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    log "dynamodb local: java/mvn missing: apt-get install openjdk-17-jre-headless maven"
    apt_install openjdk-17-jre-headless maven
  fi
  if [ -f "$dir/.complete" ] && [ -f "$dir/lib/DynamoDBLocal.jar" ] && [ -f "$so" ]; then
    log "dynamodb local: present"
    return
  fi
  log "dynamodb local: maven software.amazon.dynamodb:DynamoDBLocal:$DYNAMODB_LOCAL_VERSION"
  rm -rf "$dir"
  mkdir -p "$dir"
  cat >"$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.ferry</groupId><artifactId>ddb-local</artifactId><version>1</version>
  <dependencies>
    <dependency>
      <groupId>software.amazon.dynamodb</groupId><artifactId>DynamoDBLocal</artifactId>
      <version>$DYNAMODB_LOCAL_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
  (cd "$dir" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib -Dmdep.stripVersion=true)
  # sqlite4java loads lib<name>-linux-amd64.so from java.library.path; with stripped versions Maven already
  # names it so, but make sure (a versioned name would not be found).
  if [ ! -f "$so" ]; then
    local found
    found="$(find "$dir/lib" -name 'libsqlite4java-linux-amd64*.so' | head -n 1)"
    [ -n "$found" ] || die "dynamodb local: no libsqlite4java-linux-amd64 native library in $dir/lib"
    cp "$found" "$so"
  fi
  touch "$dir/.complete"
}

ferretdb_works() { "$FERRY_CACHE/bin/ferretdb" --version >/dev/null 2>&1; }

install_ferretdb() {
  if [ -x "$FERRY_CACHE/bin/ferretdb" ] && ferretdb_works; then
    log "ferretdb: present"
    return
  fi
  # FerretDB embeds generated files from build/version, and version.txt is required: a plain
  # `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a binary that panics at startup
  # with "Invalid build/version/version.txt file content. Please run `bin/task gen-version`. Alternatively,
  # create this file manually ...". The module cache is read-only, so build from a writable copy of the
  # module source with version.txt written in (the package's documented alternative to `task gen-version`).
  command -v go >/dev/null 2>&1 || die "ferretdb: go is not installed (FerretDB $FERRETDB_VERSION needs go >= 1.24)"
  log "ferretdb: go build $FERRETDB_VERSION from a copy of the module source"
  local moddir src="$FERRY_CACHE/ferretdb-src-$FERRETDB_VERSION"
  moddir="$(cd "$FERRY_CACHE" && GO111MODULE=on go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  [ -d "$moddir" ] || die "ferretdb: go mod download did not produce the module source"
  rm -rf "$src" "$FERRY_CACHE/ferretdb-build"
  cp -r "$moddir" "$src"
  chmod -R u+w "$src"
  printf '%s\n' "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  printf 'ferry-local\n' >"$src/build/version/package.txt"
  # GOTOOLCHAIN=local: build with the installed Go instead of fetching the module's go1.24.3 toolchain.
  (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -trimpath -o "$FERRY_CACHE/bin/ferretdb.new" ./cmd/ferretdb)
  mv -f "$FERRY_CACHE/bin/ferretdb.new" "$FERRY_CACHE/bin/ferretdb"
  rm -rf "$src"
  ferretdb_works || die "ferretdb: the built binary does not run: $("$FERRY_CACHE/bin/ferretdb" --version 2>&1 | head -n 3)"
}

t_all=$SECONDS
if want mariadb; then step mariadb install_mariadb; fi
if want tools; then step tools install_tools_venv; fi
if want sam; then step sam install_sam_venv; fi
if want dynamodb; then step dynamodb install_dynamodb_local; fi
if want ferretdb; then step ferretdb install_ferretdb; fi
log "done in $((SECONDS - t_all)) s"
