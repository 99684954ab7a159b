"""Face recognition (BlazeFace + dlib ResNet descriptor + gallery) on a camera.

Enrol: ros2 service call /face_recognition/enroll opendr_interfaces/srv/EnrollFace "{name: Ada}"
(the largest face of the latest frame), or set enroll_dir to a folder tree <person>/<images>.

    ros2 launch opendr_bringup face_recognition.launch.py image:=/camera/color/image_raw

Parameters: config/face_recognition.yaml (pass params_file:=... to use your own).
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
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([config, "face_recognition.yaml"]),
                              description="Parameter file of the node"),
        # Large images between processes (kept if you set your own profile): Fast DDS 2 and 3 names.
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", default_value=profile)),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile)),
        Node(package="opendr_perception", executable="face_recognition", name="face_recognition", output="screen",
             parameters=[LaunchConfiguration("params_file")],
             remappings=[("image", LaunchConfiguration("image"))]),
    ])
