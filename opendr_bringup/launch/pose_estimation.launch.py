"""Multi-person pose estimation (BlazePose) on a camera.

    ros2 launch opendr_bringup pose_estimation.launch.py image:=/camera/color/image_raw

Parameters: config/pose_estimation.yaml (pass params_file:=... to use your own).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    config = PathJoinSubstitution([FindPackageShare("opendr_bringup"), "config"])
    profile = PathJoinSubstitution([config, "fastdds_large_data.xml"])
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="Camera image topic"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config, "pose_estimation.yaml"]),
                              description="Parameter file of the node"),
        # Large images between processes (kept if you set your own profile): Fast DDS 2 and 3 names.
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", default_value=profile)),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile)),
        Node(package="opendr_perception", executable="pose_estimation", name="pose_estimation", output="screen",
             parameters=[LaunchConfiguration("params_file")],
             remappings=[("image", LaunchConfiguration("image"))]),
    ])
