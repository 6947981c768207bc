#!/usr/bin/env bash
# Install chdb (pinned in requirements.txt) for deploy/chdb/run_sql.py. Idempotent:
# skips pip when the pinned chdb version already imports.
# Environment: PYTHON (default python3).
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
WANT="$(sed -n 's/^chdb==\([^ ]*\).*/\1/p' "$DIR/requirements.txt")"

if "$PY" -c "import sys, chdb; sys.exit(chdb.__version__ != '$WANT')" 2>/dev/null; then
    echo "[chdb] chdb $WANT already installed"
    exit 0
fi
echo "[chdb] pip install -r deploy/chdb/requirements.txt (chdb $WANT)"
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$DIR/requirements.txt"
"$PY" -c "import chdb; print('[chdb] installed chdb', chdb.__version__)"
