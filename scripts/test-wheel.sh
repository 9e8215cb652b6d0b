#!/usr/bin/env bash
# The Python wheel and `cargo install`, as users get berth: builds the wheel with maturin (from
# the package index; `--profile dev` reuses the test command's debug build, a release wheel is
# `maturin build --release`), installs it into a fresh virtualenv, and runs tests/wheel there
# with no Rust on the PATH; then `cargo install --path crates/berth` into a temporary root and
# runs the installed binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d -t berth-wheel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== the wheel: maturin build"
python3 -m venv "$WORK/build"
"$WORK/build/bin/pip" install --quiet --disable-pip-version-check "$(grep '^maturin==' tests/wheel/requirements.txt)"
"$WORK/build/bin/maturin" build --quiet --profile dev --out "$WORK/dist" 2>&1 | tail -5
wheel=$(ls "$WORK"/dist/berth_server-*.whl)
echo "built $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"

echo "== the wheel: installed into a fresh virtualenv, tested with no Rust on the PATH"
python3 -m venv "$WORK/user"
"$WORK/user/bin/pip" install --quiet --disable-pip-version-check "${wheel}[onnx]" $(grep -E '^(pytest|boto3|onnxruntime)==' tests/wheel/requirements.txt)
# The PATH of a machine without Rust: the virtualenv's bin first, the system's directories after.
clean_path="$WORK/user/bin:/usr/local/bin:/usr/bin:/bin"
(cd "$WORK" && env -i HOME="$HOME" PATH="$clean_path" TMPDIR="${TMPDIR:-/tmp}" BERTH_DEMO_MODELS="$ROOT/crates/berth/demo" \
  "$WORK/user/bin/python" -m pytest -p no:cacheprovider -q "$ROOT/tests/wheel")

echo "== cargo install --path crates/berth"
# `--debug` and the workspace's target directory: the same install, without a second (release) build.
CARGO_TARGET_DIR="$ROOT/target" cargo install --quiet --locked --debug --path crates/berth --root "$WORK/cargo-root"
"$WORK/cargo-root/bin/berth" --version
"$WORK/cargo-root/bin/berth" completions bash | grep -q '_berth()'
"$WORK/cargo-root/bin/berth" man | grep -q '^.TH berth 1'
