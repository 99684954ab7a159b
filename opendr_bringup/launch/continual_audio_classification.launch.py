"""Audio classification with a continual transformer: a prediction every 250 ms from an audio_common stream.

    ros2 launch opendr_bringup continual_audio_classification.launch.py audio:=/audio/audio audio_info:=/audio/audio_info

The input is audio_common_msgs/AudioDataStamped (S16LE or F32LE, any rate and channel count, described by
the latched AudioInfo). The default model is a demonstration model trained on synthesized sounds (see
models/cards/cotrans_audio_synth.md).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    config = PathJoinSubstitution([FindPackageShare("opendr_bringup"), "config"])
    return LaunchDescription([
        DeclareLaunchArgument("audio", default_value="/audio", description="AudioDataStamped topic"),
        DeclareLaunchArgument("audio_info", default_value="/audio_info", description="AudioInfo topic (latched)"),
        Node(package="opendr_perception", executable="continual_audio_classification",
             name="continual_audio_classification", output="screen",
             parameters=[PathJoinSubstitution([config, "continual_audio_classification.yaml"])],
             remappings=[("audio", LaunchConfiguration("audio")), ("audio_info", LaunchConfiguration("audio_info"))]),
    ])
