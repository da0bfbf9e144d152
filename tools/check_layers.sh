#!/usr/bin/env bash
# The import contract (pyproject's [tool.importlinter]) checked on an installed copy of the package:
# import-linter reads the package from disk and cannot follow the package-dir mapping of an editable
# install (runtimes/ and exporters/ live outside dehazekit/ in the repository).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
python -m pip install -q --no-deps --no-compile --target "$site" "$repo" 2>&1 | grep -v -i warn || true
cd "$site"  # so the source tree is not imported instead of the installed copy
PYTHONPATH="$site" lint-imports --config "$repo/pyproject.toml"
