"""Video activity recognition on a camera with a continual X3D (CoX3D, one step per frame).

    ros2 launch opendr_bringup video_activity_recognition.launch.py image:=/camera/color/image_raw frame_skip:=3

The default model is a demonstration model trained on procedural moving-shape videos at 10 frames/s
(see models/cards/); set frame_skip so that the camera rate / frame_skip is close to the model's rate.
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
        DeclareLaunchArgument("mode", default_value="continual",
                              description="continual (CoX3D) or clip (regular X3D over a sliding window)"),
        DeclareLaunchArgument("frame_skip", default_value="1", description="Use every n-th camera image"),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", default_value=profile)),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile)),
        Node(package="opendr_perception", executable="video_activity_recognition",
             name="video_activity_recognition", output="screen",
             parameters=[PathJoinSubstitution([config, "video_activity_recognition.yaml"]),
                         {"mode": LaunchConfiguration("mode"),
                          "frame_skip": LaunchConfiguration("frame_skip")}],
             remappings=[("image", LaunchConfiguration("image"))]),
    ])
