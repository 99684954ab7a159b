#!/usr/bin/env bash
# Set up opendr-ros2 if needed, then run the demo: real photos -> bag -> face detection, pose estimation and
# high-resolution pose estimation nodes over DDS -> annotated MCAP bag and PNG files in ./opendr_demo_output.
#   scripts/demo.sh                    # arguments pass to opendr-demo (--help lists them)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# shellcheck source=/dev/null
. "$ROOT/scripts/env.sh"
exec opendr-demo "$@"
