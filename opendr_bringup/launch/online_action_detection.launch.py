"""Online action detection with a continual transformer: background or an action for every frame's features.

    ros2 launch opendr_bringup online_action_detection.launch.py features:=/video/features

The input is opendr_interfaces/FeatureVector, one per frame. The default model is a demonstration model
trained on synthetic feature streams (see models/cards/cotrans_oad_synth.md); it expects 32 values per vector.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    config = PathJoinSubstitution([FindPackageShare("opendr_bringup"), "config"])
    return LaunchDescription([
        DeclareLaunchArgument("features", default_value="/features", description="FeatureVector topic"),
        Node(package="opendr_perception", executable="online_action_detection",
             name="online_action_detection", output="screen",
             parameters=[PathJoinSubstitution([config, "online_action_detection.yaml"])],
             remappings=[("features", LaunchConfiguration("features"))]),
    ])
