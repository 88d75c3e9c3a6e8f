#!/usr/bin/env bash
# Build the ROS 2 interface packages of interfaces/ (today: vision_msgs) into a venv that holds
# the PyPI ROS 2 Jazzy wheels, so that `import vision_msgs.msg` works from that venv's python
# with nothing sourced. With apt ROS none of this is needed: depend on ros-<distro>-vision-msgs.
#
#   interfaces/build.sh VENV        e.g. interfaces/build.sh .venv
#
# What it does:
#   1. skips everything when VENV/.interfaces/stamp holds the digest of interfaces/,
#      requirements/interfaces.txt and requirements/ros.txt (the message wheels it links to);
#   2. pip-installs requirements/interfaces.txt (ament_cmake, rosidl generators; all pinned);
#   3. per package: cmake + build in a temporary folder, with the wheels' stale Python/numpy
#      include folders replaced in this build only (venv_python_paths.cmake: the files pip
#      installed are not edited), then installs into a staging copy (DESTDIR) of the venv
#      prefix and imports the staged package before anything in the venv changes;
#   4. copies the staged files into the venv prefix (libraries in VENV/lib, where the wheels'
#      bootstrapper puts LD_LIBRARY_PATH; the Python package swapped in last by a rename), and
#      writes the stamp. A failed build leaves the venv as it was.
# Measured here: 57 s from scratch on 2 quiet cores (110-160 s with the machine loaded), 70 s
# of CPU; 421 files, 2.4 MB (3.4 MB on disk) in the venv.
# Environment: JOBS (parallel compile jobs, default: nproc).
set -euo pipefail

say() { printf 'interfaces: %s\n' "$*"; }
die() { printf 'interfaces: error: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 VENV"
[ -x "$1/bin/python" ] || die "$1/bin/python not found: create the venv first (make setup)"
VENV=$(cd "$1" && pwd)
PY=$VENV/bin/python
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
REQUIREMENTS=$REPO/requirements/interfaces.txt
STATE=$VENV/.interfaces
started=$(date +%s)

# Digest of every source that shapes the result: relative names and contents.
digest=$(cd "$REPO" && { find interfaces -type f ! -path '*/__pycache__/*' | LC_ALL=C sort \
    | xargs sha256sum; sha256sum requirements/interfaces.txt requirements/ros.txt; } \
    | sha256sum | cut -d' ' -f1)
packages=()
for xml in "$HERE"/*/package.xml; do
    packages+=("$(basename "$(dirname "$xml")")")
done
[ ${#packages[@]} -gt 0 ] || die "no package under $HERE"

SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    || die "$PY does not run"
up_to_date=1
[ "$(cat "$STATE/stamp" 2>/dev/null)" = "$digest" ] || up_to_date=0
for pkg in "${packages[@]}"; do
    [ -f "$SITE/$pkg/msg/__init__.py" ] || up_to_date=0
done
if [ $up_to_date -eq 1 ]; then
    say "${packages[*]} up to date in $VENV"
    exit 0
fi

missing=()
for tool in cmake make cc c++; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] || die "${missing[*]} not found; building ${packages[*]} needs cmake, \
make and a C/C++ compiler (Debian: apt-get install cmake g++ make)"

say "installing the build wheels (requirements/interfaces.txt)"
"$PY" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" \
    || die "pip could not install requirements/interfaces.txt into $VENV"

work=$(mktemp -d "${TMPDIR:-/tmp}/densehybrid-interfaces.XXXXXX")
trap 'rm -rf "$work"' EXIT
jobs=${JOBS:-$(nproc)}
# Only the venv: a sourced apt ROS (AMENT_PREFIX_PATH, CMAKE_PREFIX_PATH) must not mix in.
build_env=(env -u CMAKE_PREFIX_PATH -u COLCON_PREFIX_PATH -u PYTHONPATH
           AMENT_PREFIX_PATH="$VENV")

fail_with_log() {  # $1 package, $2 step, $3 log file
    local kept=${TMPDIR:-/tmp}/densehybrid-interfaces-$1.log
    cp "$3" "$kept"
    tail -n 30 "$3" >&2
    die "$2 of $1 failed (full log: $kept); $VENV was left unchanged"
}

for pkg in "${packages[@]}"; do
    build=$work/build/$pkg
    stage=$work/stage
    log=$work/$pkg.log
    rm -rf "$stage"
    say "building $pkg ($jobs jobs)"
    "${build_env[@]}" cmake -S "$HERE/$pkg" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
        -DPython3_EXECUTABLE="$PY" -DCMAKE_PROJECT_INCLUDE="$HERE/venv_python_paths.cmake" \
        >"$log" 2>&1 || fail_with_log "$pkg" 'cmake configuration' "$log"
    "${build_env[@]}" cmake --build "$build" --parallel "$jobs" >>"$log" 2>&1 \
        || fail_with_log "$pkg" 'compilation' "$log"
    DESTDIR=$stage "${build_env[@]}" cmake --install "$build" >>"$log" 2>&1 \
        || fail_with_log "$pkg" 'staged install' "$log"

    # The staged package must import and serialize before the venv is touched.
    staged=$stage$VENV
    [ -d "$stage$SITE/$pkg" ] || die "$pkg: the install put no Python package in $SITE"
    # The bootstrapper's library path with the staged libraries first (no re-exec: fixed order).
    ros_libs=$(_ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$PY" -c \
        'import ros_wheels_bootstrapper as b; print(b.get_ros_paths())')
    PYTHONPATH=$stage$SITE LD_LIBRARY_PATH=$staged/lib:$ros_libs \
        _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$PY" -c "
import importlib
from rclpy.serialization import serialize_message
msgs = importlib.import_module('$pkg.msg')
assert msgs.__file__.startswith('$staged'), msgs.__file__
names = [n for n in dir(msgs) if not n.startswith('_')]
assert names, 'no message types'
for name in names:
    serialize_message(getattr(msgs, name)())
print(len(names), 'message types import and serialize')
" >>"$log" 2>&1 || fail_with_log "$pkg" 'import check of the staged package' "$log"

    # Into the venv: stamp away first (an interrupted copy rebuilds next time), files the
    # previous build installed and this one does not removed, everything but the Python package
    # copied over, then the Python package swapped in by renames on one file system.
    mkdir -p "$STATE"
    rm -f "$STATE/stamp"
    (cd "$staged" && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort) >"$work/$pkg.files"
    if [ -f "$STATE/$pkg.files" ]; then
        LC_ALL=C comm -23 <(LC_ALL=C sort "$STATE/$pkg.files") "$work/$pkg.files" \
            | while IFS= read -r old; do rm -f "$VENV/$old"; done
    fi
    site_rel=${SITE#"$VENV"/}
    tar -C "$staged" --exclude="./$site_rel/$pkg" -cf - . | tar -C "$VENV" -xf -
    rm -rf "$SITE/.$pkg.new" "$SITE/.$pkg.old"
    cp -a "$stage$SITE/$pkg" "$SITE/.$pkg.new"
    [ ! -e "$SITE/$pkg" ] || mv "$SITE/$pkg" "$SITE/.$pkg.old"
    mv "$SITE/.$pkg.new" "$SITE/$pkg"
    rm -rf "$SITE/.$pkg.old"
    "$PY" -m compileall -q "$SITE/$pkg" >/dev/null     # the install compiled the final path only
    cp "$work/$pkg.files" "$STATE/$pkg.files"
    size=$(cd "$VENV" && xargs -d '\n' stat -c %s <"$STATE/$pkg.files" \
        | awk '{ s += $1 } END { printf "%.1f", s / 1e6 }')
    say "$pkg installed into $VENV ($(wc -l <"$STATE/$pkg.files") files, $size MB)"
done

echo "$digest" >"$STATE/stamp"
say "done in $(($(date +%s) - started)) s"
