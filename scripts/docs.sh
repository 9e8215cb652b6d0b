#!/usr/bin/env bash
# The documentation site: checks that the generated reference pages are what the code says
# (the command line, the API coverage table, the events), builds the mdBook (docs/book.toml,
# into target/book) with mdBook from crates.io, and fails on a broken link.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MDBOOK_VERSION=0.5.4
MDBOOK="$ROOT/target/tools/bin/mdbook"
if [[ ! -x $MDBOOK ]] || ! "$MDBOOK" --version | grep -q "$MDBOOK_VERSION"; then
  echo "== installing mdBook $MDBOOK_VERSION (crates.io)"
  CARGO_TARGET_DIR="$ROOT/target/tools/build" cargo install --quiet --locked --no-default-features --version "$MDBOOK_VERSION" --root "$ROOT/target/tools" mdbook
  rm -rf "$ROOT/target/tools/build"
fi
BERTH=${BERTH_BIN:-$ROOT/target/debug/berth}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
echo "== docs: generated reference pages"
diff -u docs/src/reference/cli.md <("$BERTH" cli-reference) >/dev/null || {
  echo "docs/src/reference/cli.md is stale: run \`berth cli-reference > docs/src/reference/cli.md\`" >&2
  exit 1
}
"$PYTHON" tools/api_coverage.py --check docs/src/reference/api-coverage.md
"$PYTHON" tools/docs_reference.py --check
echo "== docs: mdBook build and links"
rm -rf target/book
"$MDBOOK" build docs 2>&1 | grep -v '^ INFO' || true
[[ -f target/book/index.html ]] || { echo "mdBook built nothing" >&2; exit 1; }
python3 tools/check_links.py target/book
