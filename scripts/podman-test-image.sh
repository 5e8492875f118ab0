#!/usr/bin/env bash
# Builds the container image the `--sandbox podman` tests run in, without any registry: a
# minimal root file system (bash, coreutils, git, python3 and the libraries they use) copied
# from this Debian host's own installed packages, then `podman import`. Idempotent and cached
# by content: the tag is a hash of this script and the versions of those packages, and an
# image with that tag is reused (a second run does nothing). Prints the image name.
#   scripts/podman-test-image.sh            # build if missing, print the name
# Needs podman (scripts/setup.sh installs it) and dpkg.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() {
    echo "podman-test-image.sh: error: $*" >&2
    exit 1
}
command -v podman >/dev/null 2>&1 || die "podman not installed: run scripts/setup.sh"
command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script needs Debian/Ubuntu"

# The same engine options the sandbox passes on a host without systemd.
PODMAN=(podman --log-level=error)
if [ ! -d /run/systemd/system ]; then
    PODMAN+=(--cgroup-manager=cgroupfs --events-backend=file)
fi

# What the tests need inside: a shell, coreutils, git, python3 (more-itertools' unittest),
# and the small tools agents use.
WANTED=(bash coreutils git python3 findutils grep sed diffutils)
# Large packages git or python pull in that the tests never use.
SKIPPED=" git-man perl perl-modules-5.36 libperl5.36 "

versions="$(dpkg-query -W -f '${Package}=${Version}\n' "${WANTED[@]}" 2>/dev/null)" ||
    die "some of ${WANTED[*]} are not installed: run scripts/setup.sh"
key="$( (cat "${BASH_SOURCE[0]}"; echo "$versions") | sha256sum | cut -c1-16)"
IMAGE="localhost/trajforge-test:$key"

# Concurrent test binaries build the image once.
lock="${TMPDIR:-/tmp}/trajforge-podman-test-image.lock"
exec 9>"$lock"
flock 9

if "${PODMAN[@]}" image exists "$IMAGE"; then
    echo "$IMAGE"
    exit 0
fi

# The installed packages WANTED needs, following Depends and Pre-Depends (first alternative).
seen=" "
queue=("${WANTED[@]}")
while [ "${#queue[@]}" -gt 0 ]; do
    pkg="${queue[0]}"
    queue=("${queue[@]:1}")
    case "$seen$SKIPPED" in *" $pkg "*) continue ;; esac
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || continue
    seen="$seen$pkg "
    while IFS= read -r dep; do
        [ -n "$dep" ] && queue+=("$dep")
    done < <(dpkg-query -W -f '${Pre-Depends},${Depends}' "$pkg" |
        tr ',' '\n' | sed -E 's/\(.*\)//; s/\|.*//; s/:any//; s/[[:space:]]//g')
done

stage="$(mktemp -d "${TMPDIR:-/tmp}/trajforge-image.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
# Every file (not directory) of those packages, documentation left out; on a merged-/usr host
# /bin, /sbin, /lib and /lib64 are links into /usr, recreated below.
# shellcheck disable=SC2086
dpkg -L $seen | sort -u | grep -Ev '^/usr/share/(doc|man|info|locale)/' |
    while IFS= read -r f; do
        if [ -d "$f" ] && [ ! -L "$f" ]; then continue; fi
        [ -e "$f" ] || [ -L "$f" ] || continue
        case "$f" in /bin | /sbin | /lib | /lib64) continue ;; esac
        real="$f"
        for top in bin sbin lib lib64; do
            if [ -L "/$top" ] && [ "${f#/"$top"/}" != "$f" ]; then
                real="/usr$f"
            fi
        done
        printf '%s\0' "${real#/}"
    done >"$stage/files"
mkdir "$stage/root"
tar -C / --null --no-recursion -T "$stage/files" -cf - | tar -C "$stage/root" -xf -
cd "$stage/root"
for top in bin sbin lib lib64; do
    if [ -L "/$top" ] && [ ! -e "$top" ]; then ln -s "usr/$top" "$top"; fi
done
# No /workspace: the engine creates the mount point. Through podman-docker's `docker` an
# existing one would be copied onto the workspace volume with its owner (root), which the
# sandbox user cannot write to (docker copies nothing onto a volume that is not empty).
mkdir -p etc tmp root proc dev sys
chmod 1777 tmp
printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' >etc/group
tar -C "$stage/root" -cf - . | "${PODMAN[@]}" import -q - "$IMAGE" >/dev/null
echo "$IMAGE"
