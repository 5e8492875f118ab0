#!/usr/bin/env bash
# Idempotent system set-up for a Debian machine that already has the Rust
# toolchain (cargo) and python3. Installs with apt only the Debian packages that
# are missing; when nothing is missing it needs no network and prints
# "system packages: ok". It never downloads toolchains.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() {
    echo "setup.sh: error: $*" >&2
    exit 1
}

# Cargo may live in ~/.cargo/bin without being on PATH in a non-login shell.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found. Install the Rust toolchain (rustup, Rust >= 1.90) and make sure cargo is on PATH; this script does not download toolchains."

# Debian packages the project needs.
BASE_PACKAGES=(
    git
    python3
    ca-certificates
    build-essential
    pkg-config
)

# ---------------------------------------------------------------------------
# EXTRA PACKAGES: later issues add the Debian packages they need HERE, one per
# line, e.g. bubblewrap (sandbox), chromium (web), cmake, clang, libclang-dev.
EXTRA_PACKAGES=(
    bubblewrap # the rootless sandbox every agent command runs in
    procps     # ps, used by the sandbox escape tests
    curl       # the serve tests call the server with curl, as the README does
    cmake        # builds llama.cpp (crate llama-cpp-sys-2, the local teacher)
    clang        # bindgen's C front end for the llama.cpp bindings
    libclang-dev # libclang.so, loaded by bindgen
    chromium     # headless browser driven over DevTools (web environment, site crawl)
    postgresql   # the scale-out store's tests start a throwaway cluster (initdb, pg_ctl)
    podman       # the container backend (--sandbox podman); its tests import a local image
    catatonit    # podman's --init: the container's pid 1 reaps orphans
    runc         # podman's runtime on hosts with hybrid cgroups, where crun refuses to start
    uidmap       # newuidmap/newgidmap for rootless podman
    podman-docker # /usr/bin/docker running podman: the `--sandbox docker` test drives docker's CLI through it
)
# podman-docker's `docker` prints a notice on every call unless this file exists; the notice
# would land in the output of every command run with `--sandbox docker`.
NODOCKER=/etc/containers/nodocker
# ---------------------------------------------------------------------------

is_installed() {
    # no grep -q: with pipefail an early grep exit could SIGPIPE dpkg
    dpkg -s "$1" 2>/dev/null | grep '^Status: install ok installed$' >/dev/null
}

command -v dpkg >/dev/null 2>&1 ||
    die "dpkg not found: this script supports Debian/Ubuntu only. Install by hand: ${BASE_PACKAGES[*]} ${EXTRA_PACKAGES[*]}"

missing=()
for pkg in "${BASE_PACKAGES[@]}" "${EXTRA_PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

# fetch-test-data.sh needs pip and python-env.sh needs venv; add Debian's only when python3 has none.
# node and npm run the Claude Code CLI (scripts/claude-code.sh); a node from elsewhere
# (nodesource) brings its own npm, and Debian's npm package would conflict with it.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if ! python3 -m pip --version >/dev/null 2>&1 && ! is_installed python3-pip; then
    missing+=(python3-pip)
fi
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && ! is_installed python3-venv; then
    missing+=(python3-venv)
fi

if [ "${#missing[@]}" -eq 0 ] && [ -e "$NODOCKER" ]; then
    echo "system packages: ok"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
        die "not root and no sudo: install these Debian packages as root: ${missing[*]}"
    SUDO=(sudo)
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if [ "${#missing[@]}" -gt 0 ]; then
    if ! "${SUDO[@]}" apt-get update >"$log" 2>&1; then
        cat "$log" >&2
        die "'apt-get update' failed (output above); check network access to the Debian mirrors, then re-run scripts/setup.sh."
    fi
    if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
        cat "$log" >&2
        die "'apt-get install ${missing[*]}' failed (output above)."
    fi
    for pkg in "${missing[@]}"; do
        echo "installed: $pkg"
    done
fi
if [ ! -e "$NODOCKER" ]; then
    "${SUDO[@]}" touch "$NODOCKER"
    echo "created: $NODOCKER (quiets podman-docker's notice)"
fi
