"""Launch the hpe head pose node: `ros2 launch hpe_ros head_pose.launch.py`.

Arguments:
  camera_namespace  namespace of the camera driver's topics (default /camera)
  image_topic       image topic inside it (default image_raw); its /compressed and the
                    namespace's camera_info are remapped alongside
  backend           onnxruntime (default, CPU) | torch | tensorrt
  model_path        model directory; empty = the shipped default model
  params_file       parameter YAML (default: share/hpe_ros/config/head_pose.yaml)
  namespace         namespace of the node
  autostart         configure and activate the lifecycle node at start-up (default true)

Portable to Humble, Jazzy and Kilted: the lifecycle node is activated with launch events (a
ChangeState configure emitted at start, an activate when the first configure reaches
``inactive``), both
under ``IfCondition(autostart)``, instead of ``LifecycleNode(autostart=...)``, which older
launch_ros does not have and which takes a substitution as always true. The parameter file's
top key is ``/**``, so it applies under any ``namespace``.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> LaunchDescription:
    camera_ns = LaunchConfiguration("camera_namespace")
    image_topic = LaunchConfiguration("image_topic")
    arguments = [
        DeclareLaunchArgument("camera_namespace", default_value="/camera",
                              description="namespace of the camera driver's topics"),
        DeclareLaunchArgument("image_topic", default_value="image_raw",
                              description="image topic inside camera_namespace"),
        DeclareLaunchArgument("backend", default_value="onnxruntime",
                              description="onnxruntime | torch | tensorrt"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="model directory; empty = the shipped default model"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("hpe_ros"), "config", "head_pose.yaml"]),
            description="parameter YAML of the node"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the lifecycle node at start-up"),
    ]
    node = LifecycleNode(
        package="hpe_ros",
        executable="head_pose_node",
        name="head_pose_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {"backend": LaunchConfiguration("backend"), "model_path": LaunchConfiguration("model_path")},
        ],
        remappings=[
            ("image", [camera_ns, "/", image_topic]),
            ("image/compressed", [camera_ns, "/", image_topic, "/compressed"]),
            ("camera_info", [camera_ns, "/camera_info"]),
        ],
    )
    autostart = IfCondition(LaunchConfiguration("autostart"))
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                            transition_id=Transition.TRANSITION_CONFIGURE),
                          condition=autostart)
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
                          handle_once=True,  # the first configure only: a later deactivate stays inactive
                          entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                                transition_id=Transition.TRANSITION_ACTIVATE))]),
        condition=IfCondition(LaunchConfiguration("autostart")))
    return LaunchDescription(arguments + [node, activate_when_configured, configure])
