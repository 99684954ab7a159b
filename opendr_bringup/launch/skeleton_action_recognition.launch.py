"""Skeleton-based action recognition on a camera: pose_estimation -> skeleton_action_recognition.

    ros2 launch opendr_bringup skeleton_action_recognition.launch.py image:=/camera/color/image_raw

The default model is a demonstration model trained on procedural stick figures (see models/cards/);
the published ST-GCN family weights load into the same continual models.
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
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", default_value=profile)),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile)),
        Node(package="opendr_perception", executable="pose_estimation", name="pose_estimation", output="screen",
             parameters=[PathJoinSubstitution([config, "pose_estimation.yaml"]), {"keypoint_layout": "coco18"}],
             remappings=[("image", LaunchConfiguration("image"))]),
        Node(package="opendr_perception", executable="skeleton_action_recognition",
             name="skeleton_action_recognition", output="screen",
             parameters=[PathJoinSubstitution([config, "skeleton_action_recognition.yaml"])],
             remappings=[("poses", "/poses")]),
    ])
