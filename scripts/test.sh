#!/usr/bin/env bash
# The test command: sets up the pinned Python test environments, builds berth, runs the Rust
# tests and the compatibility suite (real boto3, SageMaker SDK v2 and v3, AWS CLI against a real
# berth process). Extra arguments go to pytest, e.g. `scripts/test.sh -k traffic`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Disk space, for reading a failure: the Python runtime tests make environments of 0.3–5 GB.
echo "== disk: $(df -h --output=avail "$ROOT" | tail -1 | tr -d ' ') free under $ROOT, $(df -h --output=avail "${TMPDIR:-/tmp}" | tail -1 | tr -d ' ') under ${TMPDIR:-/tmp}"

# A virtualenv per requirements file, rebuilt only when the pins change.
venv() {
  local dir=$1 requirements=$2
  local stamp="$dir/.requirements.sha256"
  local want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [[ ! -x "$dir/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "== setting up $dir from $requirements"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
}
# The dashboard test drives Debian's Chromium through its ChromeDriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing chromium and chromium-driver (Debian packages) for the dashboard test"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  apt_install() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
  apt_install || { $sudo apt-get update -qq && apt_install; }
fi

# The cluster's clock-skew test runs servers under libfaketime (Debian's faketime).
if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
  echo "== installing faketime (Debian package) for the cluster's clock-skew test"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  apt_faketime() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends faketime >/dev/null; }
  apt_faketime || { $sudo apt-get update -qq && apt_faketime; }
fi

# The Inference Recommender test checks a job's measured throughput against wrk's (Debian's wrk).
if ! command -v wrk >/dev/null; then
  echo "== installing wrk (Debian package) for the Inference Recommender test"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  apt_wrk() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
  apt_wrk || { $sudo apt-get update -qq && apt_wrk; }
fi

# Container images run through a Docker engine: Debian's docker.io, started here when none runs.
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  if ! command -v dockerd >/dev/null; then
    echo "== installing docker.io (Debian package) for the container image tests"
    apt_docker() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker.io >/dev/null; }
    apt_docker || { $sudo apt-get update -qq && apt_docker; }
  fi
  echo "== starting dockerd (log: /tmp/berth-test-dockerd.log)"
  $sudo sh -c 'nohup dockerd >/tmp/berth-test-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version --format 'Docker engine {{.Server.Version}}' || { tail -20 /tmp/berth-test-dockerd.log; exit 1; }
fi

# berth's container image is built on debian:bookworm-slim; no image can be pulled here, so the
# base is made from Debian's packages (mmdebstrap's minbase) and imported under that name.
if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  if ! command -v mmdebstrap >/dev/null; then
    echo "== installing mmdebstrap (Debian package) for the container image's base"
    apt_mmdebstrap() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
    apt_mmdebstrap || { $sudo apt-get update -qq && apt_mmdebstrap; }
  fi
  echo "== making debian:bookworm-slim with mmdebstrap"
  $sudo mmdebstrap --quiet --variant=minbase bookworm - | docker import - debian:bookworm-slim >/dev/null
fi

# The shared store's tests run on a PostgreSQL of their own (Debian's package, an unprivileged
# cluster on 127.0.0.1), stopped and removed when the tests end.
PG_DIR=$(mktemp -d -t berth-test-postgres.XXXXXX)
echo "== starting PostgreSQL for the shared-store tests"
export BERTH_TEST_POSTGRES
BERTH_TEST_POSTGRES=$(bash scripts/postgres.sh start "$PG_DIR")
trap 'bash "$ROOT/scripts/postgres.sh" stop "$PG_DIR"' EXIT

venv "$ROOT/.venv" tests/requirements.txt
venv "$ROOT/.venv-sdk3" tests/requirements-sdk3.txt

echo "== rust-version"
python3 tools/check_rust_version.py ${BERTH_EXACT_TOOLCHAIN:+--exact}
echo "== module cycles"
python3 tools/module_cycles.py
echo "== cargo fmt --check, cargo clippy"
cargo fmt --check
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings
echo "== cargo build"
cargo build --locked --bin berth
echo "== cargo test"
cargo test --locked --workspace
echo "== berth's container image (the debug build, packaged as a release is)"
export BERTH_TEST_IMAGE=berth:test
bash scripts/build-image.sh --debug "$BERTH_TEST_IMAGE"

echo "== the wheel and cargo install, as users install berth"
bash scripts/test-wheel.sh
echo "== the documentation"
BERTH_BIN="$ROOT/target/debug/berth" PYTHON="$ROOT/.venv/bin/python" bash scripts/docs.sh

echo "== compatibility suite"
export BERTH_BIN="$ROOT/target/debug/berth"
export BERTH_SDK3_PYTHON="$ROOT/.venv-sdk3/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"
cd tests/compat
"$ROOT/.venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
