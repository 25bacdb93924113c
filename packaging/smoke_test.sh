#!/usr/bin/env bash
# Smoke-test a built one-folder bundle: packaging/smoke_test.sh [dist/crossledger]
#
#  1. `crossledger --version` prints the version (EXPECTED_VERSION, if set, must match).
#  2. `crossledger --self-test` with no D-Bus: passes, with the keyring reported as a warning.
#  3. `crossledger --self-test` in a private D-Bus session with an unlocked gnome-keyring (when
#     dbus-run-session and gnome-keyring-daemon are installed): passes and names the Secret
#     Service backend, so the bundle really ships keyring's backends, secretstorage and jeepney.
#  4. `crossledger doctor` loads Qt inside the bundle (offscreen) and answers every check.
#  5. The window starts offscreen and is still running after a few seconds.
# Everything runs with HOME in a temporary folder and QT_QPA_PLATFORM=offscreen.
set -euo pipefail

BUNDLE=${1:-dist/crossledger}
EXE="$BUNDLE/crossledger"
[[ -x "$EXE" ]] || { echo "smoke test: no executable at $EXE (build first: packaging/build_linux.sh)" >&2; exit 2; }
EXE=$(cd "$(dirname "$EXE")" && pwd)/crossledger

T=$(mktemp -d -t crossledger-smoke-XXXXXX)
trap 'rm -rf "$T"' EXIT
export HOME="$T/home" XDG_DATA_HOME="$T/home/.local/share" XDG_CONFIG_HOME="$T/home/.config"
export XDG_CACHE_HOME="$T/home/.cache" QT_QPA_PLATFORM=offscreen
mkdir -p "$HOME"
unset CROSSLEDGER_HOME
failures=0

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; failures=$((failures + 1)); }

step "crossledger --version"
version=$("$EXE" --version)
echo "$version"
if [[ ! "$version" =~ ^crossledger\ [0-9] ]]; then
    fail "--version printed '$version'"
elif [[ -n "${EXPECTED_VERSION:-}" && "$version" != "crossledger $EXPECTED_VERSION" ]]; then
    fail "--version printed '$version', expected 'crossledger $EXPECTED_VERSION'"
fi

step "crossledger --self-test (no D-Bus: the keyring is only a warning)"
if env -u DBUS_SESSION_BUS_ADDRESS "$EXE" --self-test > "$T/headless.txt" 2> "$T/headless.err"; then
    cat "$T/headless.txt"
    grep -q '^Self-test passed' "$T/headless.txt" || fail "self-test (no D-Bus) did not say it passed"
else
    cat "$T/headless.txt" "$T/headless.err"
    fail "self-test (no D-Bus) exited non-zero"
fi

step "crossledger --self-test (private D-Bus session, gnome-keyring unlocked)"
if command -v dbus-run-session > /dev/null && command -v gnome-keyring-daemon > /dev/null; then
    # The keyring's password must not be empty; HOME is the temporary one, so no real keyring is touched.
    # shellcheck disable=SC2016  # $0 is expanded by the inner sh: it is the executable passed after the script
    if dbus-run-session -- sh -c 'printf %s crossledger-smoke | gnome-keyring-daemon --unlock --components=secrets \
            > /dev/null && exec "$0" --self-test' "$EXE" > "$T/keyring.txt" 2> "$T/keyring.err"; then
        cat "$T/keyring.txt"
        grep -q 'Keyring: sign-ins will be stored in keyring.backends.SecretService' "$T/keyring.txt" \
            || fail "self-test under D-Bus did not find the Secret Service keyring"
    else
        cat "$T/keyring.txt"
        grep -v 'fd limit' "$T/keyring.err" >&2 || true
        fail "self-test under D-Bus exited non-zero"
    fi
else
    echo "skipped: install dbus-daemon, dbus-bin and gnome-keyring to check the Secret Service backend"
    [[ -z "${CI:-}" ]] || fail "CI must check the keyring: apt-get install gnome-keyring dbus-daemon dbus-bin"
fi

step "crossledger doctor (loads Qt inside the bundle)"
set +e
env -u DBUS_SESSION_BUS_ADDRESS "$EXE" --home "$T/doctor-home" doctor > "$T/doctor.txt" 2>&1
set -e
cat "$T/doctor.txt"  # it may well list things to fix here (no keyring, no tray): only Qt matters
if grep -q 'Qt could not be loaded' "$T/doctor.txt" || ! grep -q 'System tray' "$T/doctor.txt"; then
    fail "Qt did not load inside the bundle"
fi

step "the window starts (offscreen) and keeps running"
set +e
env -u DBUS_SESSION_BUS_ADDRESS timeout 8 "$EXE" --home "$T/gui-home" > "$T/gui.txt" 2>&1
rc=$?
set -e
if [[ $rc -eq 124 ]] && grep -q 'Traceback' "$T/gui.txt"; then
    cat "$T/gui.txt"
    fail "the window kept running but printed a traceback"
elif [[ $rc -eq 124 ]]; then
    echo "still running after 8 s: ok"
else
    cat "$T/gui.txt"
    fail "the window exited after less than 8 s (exit code $rc)"
fi

echo
if [[ $failures -gt 0 ]]; then
    echo "Smoke test FAILED ($failures problem(s)) for $BUNDLE." >&2
    exit 1
fi
echo "Smoke test passed for $BUNDLE ($("$EXE" --version))."
