"""Face detection and pose estimation on one camera, viewed in rviz.

    ros2 launch opendr_bringup perception_demo.launch.py image:=/camera/color/image_raw
    ros2 launch opendr_bringup perception_demo.launch.py rviz:=false     # headless

With a bag instead of a camera: opendr-bag play BAG --loop --remap /camera/image_raw:=<image>.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("opendr_bringup")
    config = PathJoinSubstitution([share, "config"])
    profile = PathJoinSubstitution([config, "fastdds_large_data.xml"])
    image = LaunchConfiguration("image")
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="Camera image topic"),
        DeclareLaunchArgument("rviz", default_value="true", description="Start rviz2 with the suite's view"),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", default_value=profile)),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile)),
        Node(package="opendr_perception", executable="face_detection", name="face_detection", output="screen",
             parameters=[PathJoinSubstitution([config, "face_detection.yaml"])],
             remappings=[("image", image)]),
        Node(package="opendr_perception", executable="pose_estimation", name="pose_estimation", output="screen",
             parameters=[PathJoinSubstitution([config, "pose_estimation.yaml"]), {"publish_markers": True}],
             remappings=[("image", image)]),
        Node(package="rviz2", executable="rviz2", name="rviz2", condition=IfCondition(LaunchConfiguration("rviz")),
             arguments=["-d", PathJoinSubstitution([share, "rviz", "perception.rviz"])]),
    ])
