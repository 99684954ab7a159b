#!/usr/bin/env bash
# Set up opendr-ros2 if needed, then run the test suite (real nodes over real DDS, real bags).
#   scripts/test.sh                              # everything, ROS 2 Jazzy
#   scripts/test.sh -m smoke                     # pytest arguments pass through
#   OPENDR_ROS_DISTRO=kilted scripts/test.sh -m smoke
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# shellcheck source=/dev/null
. "$ROOT/scripts/env.sh"
cd "$ROOT"
echo "[test] ROS 2 $ROS_DISTRO, $(python --version), rclpy $(python -c 'import importlib.metadata as m; print(m.version("ros-rclpy"))')"
exec python -m pytest "$@"
