#!/usr/bin/env bash
# Build the Linux one-folder bundle into dist/crossledger/, then smoke-test it.
#
#   packaging/build_linux.sh              from a clean clone of the committed HEAD (what CI and releases use)
#   packaging/build_linux.sh --worktree   from the working tree as it is, with its .venv (quick local check)
#
# Environment: DIST (default <repo>/dist), PYINSTALLER_VERSION (used only when the venv has no PyInstaller),
# SKIP_SMOKE=1 to build only, CROSSLEDGER_PROFILE=<file> to bake the distribution profile (the app
# registrations behind "Sign in to <Provider>", see packaging/README.md) into the bundle. Needs git and Python 3.11+; uv is used from PATH or installed in a temporary venv.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST=${DIST:-"$ROOT/dist"}
PYINSTALLER_VERSION=${PYINSTALLER_VERSION:-6.22.3}
export UV_PYTHON_DOWNLOADS=never  # use the system Python, never download one
mode=clone
case "${1:-}" in
    --worktree) mode=worktree ;;
    "") ;;
    *) echo "usage: $0 [--worktree]" >&2; exit 2 ;;
esac

WORK=$(mktemp -d -t crossledger-build-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
started=$(date +%s)

# uv: on PATH, or the one scripts/dev.py bootstrapped, or a private one in the temporary folder.
if ! command -v uv > /dev/null; then
    if [[ -x "$ROOT/.venv-bootstrap/bin/uv" ]]; then
        PATH="$ROOT/.venv-bootstrap/bin:$PATH"
    else
        echo "Installing uv into a temporary venv …"
        python3 -m venv "$WORK/uv" && "$WORK/uv/bin/python" -m pip install --quiet uv
        PATH="$WORK/uv/bin:$PATH"
    fi
fi

if [[ $mode == clone ]]; then
    if ! git -C "$ROOT" rev-parse --git-dir > /dev/null 2>&1; then
        echo "$ROOT is not a git repository: use --worktree" >&2
        exit 2
    fi
    SRC="$WORK/src"
    git clone --quiet --no-hardlinks "$ROOT" "$SRC"
    echo "Building from a clean clone of $(git -C "$SRC" log -1 --format='%h %s')"
    if [[ ! -f "$SRC/packaging/crossledger.spec" ]]; then
        echo "The committed HEAD has no packaging/crossledger.spec: commit packaging/ first, or use --worktree." >&2
        exit 2
    fi
    if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]]; then
        echo "  (the working tree has uncommitted changes; they are not in this build — use --worktree for them)"
    fi
    (cd "$SRC" && uv sync --frozen --quiet)
else
    SRC="$ROOT"
    echo "Building from the working tree $SRC"
    [[ -x "$SRC/.venv/bin/python" ]] || (cd "$SRC" && uv sync --frozen --quiet)
fi
PY="$SRC/.venv/bin/python"

# PyInstaller comes from the lock's dev group once it is there; until then, install the tested version.
if ! "$PY" -c 'import PyInstaller' 2> /dev/null; then
    echo "Installing PyInstaller $PYINSTALLER_VERSION into $SRC/.venv …"
    uv pip install --quiet --python "$PY" "pyinstaller==$PYINSTALLER_VERSION"
fi
echo "PyInstaller $("$PY" -c 'import PyInstaller; print(PyInstaller.__version__)'), $("$PY" --version)"

if [[ -n "${CROSSLEDGER_PROFILE:-}" ]]; then
    CROSSLEDGER_PROFILE=$(realpath "$CROSSLEDGER_PROFILE")
    echo "Distribution profile $CROSSLEDGER_PROFILE:"
    (cd "$SRC" && "$PY" -m app.connectors.profile "$CROSSLEDGER_PROFILE") | sed 's/^/  /' \
        || { echo "The distribution profile cannot be used; fix it or unset CROSSLEDGER_PROFILE." >&2; exit 2; }
    export CROSSLEDGER_PROFILE
else
    echo "No CROSSLEDGER_PROFILE: the build signs in with each client's own app (packaging/README.md)."
fi

prepared=$(date +%s)
mkdir -p "$DIST"
if ! (cd "$SRC" && "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$DIST" --workpath "$WORK/build" packaging/crossledger.spec) > "$WORK/pyinstaller.log" 2>&1; then
    tail -n 60 "$WORK/pyinstaller.log" >&2
    echo "PyInstaller failed (the whole log was in $WORK/pyinstaller.log)." >&2
    exit 1
fi
built=$(date +%s)
grep -v 'Hidden import "\(pysqlite2\|MySQLdb\)" not found\|Library \(shell32\|ole32\) required via ctypes' \
    "$WORK/pyinstaller.log" | grep 'WARNING\|ERROR' || true
echo "Built $DIST/crossledger in $((built - prepared)) s (set-up $((prepared - started)) s):" \
     "$(du -sh "$DIST/crossledger" | cut -f1), $(find "$DIST/crossledger" -type f | wc -l) files."

if [[ -n "${SKIP_SMOKE:-}" ]]; then
    exit 0
fi
EXPECTED_VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$SRC/app/__init__.py") \
    bash "$SRC/packaging/smoke_test.sh" "$DIST/crossledger"
echo "Build and smoke test took $(( $(date +%s) - started )) s in all."
