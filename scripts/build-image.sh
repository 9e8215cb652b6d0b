#!/usr/bin/env bash
# Builds berth's container image from the binary cargo builds, as release pipelines do:
#   scripts/build-image.sh [--debug] [TAG]        (TAG: berth:<version>)
# Stages target/image/: the binary without its debug information, ONNX Runtime's library from
# its pinned PyPI wheel (the version berth install-onnxruntime uses), and this machine's CA
# bundle; then builds deploy/Dockerfile on the engine's debian:bookworm-slim. --debug packages
# the debug build instead (the tests do, to spare a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [[ ${1:-} == --debug ]]; then
  profile=debug
  shift
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${1:-berth:$version}
ort_version=$(sed -n 's/^const ONNXRUNTIME_VERSION: &str = "\(.*\)";/\1/p' crates/berth/src/onnxruntime.rs)

if [[ $profile == release ]]; then
  cargo build --locked --release --bin berth
else
  cargo build --locked --bin berth
fi
stage=target/image
rm -rf "$stage"
mkdir -p "$stage/onnxruntime" "$stage/wheel"
objcopy --strip-debug "target/$profile/berth" "$stage/berth"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  "onnxruntime==$ort_version" -d "$stage/wheel"
python3 - "$stage" <<'PY'
import glob, os, sys, zipfile
stage = sys.argv[1]
(wheel,) = glob.glob(f"{stage}/wheel/onnxruntime-*.whl")
with zipfile.ZipFile(wheel) as z:
    (name,) = [n for n in z.namelist() if os.path.basename(n).startswith("libonnxruntime.so")]
    with open(f"{stage}/onnxruntime/libonnxruntime.so", "wb") as out:
        out.write(z.read(name))
PY
rm -rf "$stage/wheel"
cp /etc/ssl/certs/ca-certificates.crt "$stage/ca-certificates.crt"
docker build --quiet -f deploy/Dockerfile -t "$tag" . >/dev/null
echo "$tag"
