#!/usr/bin/env python3
"""Checks that the workspace's `rust-version` is the truth.

- No locked dependency declares a newer `rust-version` than the workspace (it would not build
  on the declared toolchain).
- The compiler in use is not older than the declared version (the build would fail less
  clearly later); with `--exact` (CI) it must be the declared version itself, so that CI builds
  and tests on the toolchain the workspace names. Calls to newer standard-library APIs are
  caught by clippy's `incompatible_msrv` lint, denied in the workspace's lints.
"""

import json
import re
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    exact = "--exact" in sys.argv[1:]
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"], check=True, capture_output=True, text=True).stdout)
    members = set(meta["workspace_members"])
    declared = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
    if len(declared) != 1 or None in declared:
        sys.exit(f"rust-version: every workspace crate must take the workspace's one rust-version, found {sorted(map(str, declared))}")
    declared = declared.pop()
    want = version(declared)
    newer = sorted(
        (p["name"], p["version"], p["rust_version"])
        for p in meta["packages"]
        if p["id"] not in members and p.get("rust_version") and version(p["rust_version"]) > want
    )
    if newer:
        listed = ", ".join(f"{n} {v} (rust {r})" for n, v, r in newer)
        sys.exit(f"rust-version {declared} is older than locked dependencies need: {listed}")
    rustc = subprocess.run(["rustc", "--version"], check=True, capture_output=True, text=True).stdout
    have = version(re.match(r"rustc (\d+\.\d+\.\d+)", rustc).group(1))
    if have[:2] < want[:2]:
        sys.exit(f"berth needs Rust {declared} or newer; this is {rustc.strip()} (rustup update)")
    if exact and have[:2] != want[:2]:
        sys.exit(f"CI builds on the declared toolchain, Rust {declared}; this is {rustc.strip()}")
    print(f"rust-version {declared}: dependencies agree; building with {rustc.strip()}")


if __name__ == "__main__":
    main()
