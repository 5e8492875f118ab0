#!/usr/bin/env bash
# Creates (idempotently) the Python environment the tests use as a reference: the OpenAI client
# library for `trajforge serve`, `tokenizers` + `jinja2` for exact token counts, `pyarrow` for Parquet,
# `datasets`, `transformers`, TRL and LLaMA-Factory to load exports as trainers do.
# Packages come from PyPI only; the list is scripts/python-requirements.txt.
# Prints nothing on success when the environment is already current.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TRAJFORGE_PYTHON_ENV:-$ROOT/.cache/py}"
REQ="$ROOT/scripts/python-requirements.txt"
NODEPS="$ROOT/scripts/python-requirements-nodeps.txt"
STAMP="$VENV/.requirements"

if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && cat "$REQ" "$NODEPS" | cmp -s - "$STAMP"; then
    exit 0
fi
PY="$(command -v python3 || true)"
if [[ -z "$PY" ]]; then
    echo "python-env: python3 not found; run scripts/setup.sh first" >&2
    exit 1
fi
echo "python-env: creating $VENV from $REQ" >&2
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$NODEPS"
cat "$REQ" "$NODEPS" > "$STAMP"
