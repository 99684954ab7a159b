# Source this file to use opendr-ros2 set up by scripts/setup.sh (bash or zsh):
#   . scripts/env.sh                       # ROS 2 Jazzy
#   OPENDR_ROS_DISTRO=kilted . scripts/env.sh
_opendr_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_opendr_distro="${OPENDR_ROS_DISTRO:-jazzy}"
if [ ! -f "$_opendr_root/.ws/$_opendr_distro/install/setup.bash" ]; then
  echo "opendr-ros2 is not set up for $_opendr_distro: run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
. "$_opendr_root/.venv-$_opendr_distro/bin/activate"
_opendr_nounset=$(set +o | grep nounset); set +u  # colcon's setup scripts read unset variables
AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:-$VIRTUAL_ENV}"
. "$_opendr_root/.ws/$_opendr_distro/install/setup.bash"
eval "$_opendr_nounset"
export ROS_DISTRO="$_opendr_distro"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Large images between processes need a bigger shared-memory segment than FastDDS's default.
# Fast DDS 2.x (Jazzy) reads FASTRTPS_..., Fast DDS 3.x (Kilted) FASTDDS_...: set both.
_opendr_profile="${FASTDDS_DEFAULT_PROFILES_FILE:-${FASTRTPS_DEFAULT_PROFILES_FILE:-$_opendr_root/opendr_bringup/config/fastdds_large_data.xml}}"
export FASTDDS_DEFAULT_PROFILES_FILE="$_opendr_profile" FASTRTPS_DEFAULT_PROFILES_FILE="$_opendr_profile"
unset _opendr_root _opendr_distro _opendr_nounset _opendr_profile
