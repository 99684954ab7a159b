#!/usr/bin/env bash
# Set up opendr-ros2 without a system ROS 2: a virtualenv with the ROS 2 core from its PyPI wheels,
# the Python dependencies, and the interface packages built with colcon. Idempotent: a second run
# with nothing changed returns at once.
#
#   scripts/setup.sh                      # ROS 2 Jazzy (default)
#   OPENDR_ROS_DISTRO=kilted scripts/setup.sh
#
# Result: .venv-<distro>/ and .ws/<distro>/install/; use it with `. scripts/env.sh`.
# With a system ROS 2 (apt) you do not need this script: see README.md, "On a robot".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DISTRO="${OPENDR_ROS_DISTRO:-jazzy}"
case "$DISTRO" in
  jazzy|kilted) ;;
  *) echo "setup: OPENDR_ROS_DISTRO must be jazzy or kilted, not '$DISTRO'" >&2; exit 2 ;;
esac
VENV="$ROOT/.venv-$DISTRO"
WS="$ROOT/.ws/$DISTRO"
STAMP="$WS/setup.stamp"
log() { printf '\033[1m[setup %s]\033[0m %s\n' "$DISTRO" "$*"; }

cd "$ROOT"
inputs=(scripts/setup.sh setup.py package.xml requirements/python.txt "requirements/ros-$DISTRO.txt")
fingerprint=$( (cat "${inputs[@]}"; find compat_msgs opendr_interfaces opendr_bringup -type f | sort | xargs cat) | sha256sum | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$fingerprint" && -x "$VENV/bin/python" ]]; then
  log "up to date ($VENV, $WS/install)"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)' 2>/dev/null; then
  echo "setup: needs Python 3.11 or 3.12 (the ROS 2 and mediapipe wheels exist for those); set PYTHON=..." >&2
  exit 2
fi

# System packages: a C/C++ compiler and the Python headers build the interface packages; venv makes the
# virtualenv; Mesa's EGL lets the simulator render without a display. Installed with apt-get when missing
# (as root), else named for the user to install.
missing=()
command -v c++ >/dev/null || missing+=(build-essential)
"$PYTHON" -c 'import os, sysconfig; exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || missing+=(python3-dev)
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if command -v dpkg >/dev/null; then  # software OpenGL through EGL: the simulator renders headless
  for package in libegl1 libegl-mesa0 libgl1; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
fi
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages; run: sudo apt-get install ${missing[*]}" >&2
    exit 2
  fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

log "installing ROS 2 $DISTRO wheels and Python dependencies (first run: a few minutes)"
"${PIP[@]}" install -q --upgrade pip==25.3 setuptools==79.0.1 wheel==0.45.1
"${PIP[@]}" install -q -r "requirements/ros-$DISTRO.txt" -r requirements/python.txt
# mediapipe is used only for the model files it ships; its declared dependencies (jax, opencv-contrib,
# sounddevice) would pull in gigabytes and a second OpenCV.
"${PIP[@]}" install -q --no-deps mediapipe==0.10.14

log "building interface packages with colcon"
mkdir -p "$WS"
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
base_paths=(opendr_interfaces opendr_bringup)
for compat in vision_msgs hri_msgs tf2_msgs audio_common_msgs; do  # not on PyPI: build them from their definitions
  if ! "$VENV/bin/python" -c "import $compat.msg" 2>/dev/null; then
    base_paths+=("compat_msgs/$compat")
  fi
done
(
  source "$VENV/bin/activate"
  colcon --log-base "$WS/log" build --base-paths "${base_paths[@]}" \
    --build-base "$WS/build" --install-base "$WS/install" \
    --event-handlers console_cohesion- summary- status- console_stderr- \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
    > "$WS/colcon.out" 2>&1 || { cat "$WS/colcon.out" >&2; echo "setup: colcon build failed (log: $WS/log)" >&2; exit 1; }
)

log "installing the opendr_perception package (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

echo "$fingerprint" > "$STAMP"
log "done: . scripts/env.sh to use it"
