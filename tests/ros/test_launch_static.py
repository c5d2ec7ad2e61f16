"""Static checks of launch/head_pose.launch.py and config/head_pose.yaml.

``ros2 launch`` (launch, launch_ros) is not installable here, so the launch file cannot run;
these checks read it as Python source and prove that every executable, file, parameter and
topic it names exists in this package.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from hpe_ros.parameters import SPECS, validate

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "head_pose.launch.py"
YAML_FILE = REPO / "config" / "head_pose.yaml"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _kw(call: ast.Call, key: str):
    for kw in call.keywords:
        if kw.arg == key:
            return kw.value
    raise KeyError(key)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_launch_file_compiles_and_names_existing_things():
    tree = ast.parse(LAUNCH.read_text())
    compile(tree, str(LAUNCH), "exec")
    (node,) = _calls(tree, "LifecycleNode")
    assert _kw(node, "package").value == "hpe_ros"
    executable = _kw(node, "executable").value
    assert (REPO / "scripts" / executable).is_file()
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert re.search(rf"install\(PROGRAMS[^)]*scripts/{executable}", cmake), "executable not installed to lib/hpe_ros"
    assert _kw(node, "name").value == "head_pose_node"
    # The YAML's top-level key is "/**": its parameters apply under any namespace and node name.
    assert list(yaml.safe_load(YAML_FILE.read_text())) == ["/**"]
    # Default params file: share/hpe_ros/config/head_pose.yaml, which CMake installs.
    (arg,) = [c for c in _calls(tree, "DeclareLaunchArgument") if c.args[0].value == "params_file"]
    parts = [e.value for e in _kw(arg, "default_value").args[0].elts if isinstance(e, ast.Constant)]
    assert parts == ["config", "head_pose.yaml"] and YAML_FILE.is_file()
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in cmake
    # Launch arguments passed as parameters are node parameters.
    params = _kw(node, "parameters").elts
    overrides = [p for p in params if isinstance(p, ast.Dict)]
    for key in overrides[0].keys:
        assert key.value in SPECS, key.value
    # Remapped topics are the node's input topics.
    remapped = {pair.elts[0].value for pair in _kw(node, "remappings").elts}
    node_source = (REPO / "hpe_ros" / "head_pose_node.py").read_text()
    for topic in remapped:
        assert f'"{topic}"' in node_source, f"the node does not use topic {topic!r}"
    assert remapped == {"image", "image/compressed", "camera_info"}
    # Every LaunchConfiguration used is declared.
    declared = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration")}
    assert used <= declared, used - declared
    # lifecycle activation by events (portable to Humble, Jazzy, Kilted): no autostart= keyword
    # (a TypeError before launch_ros 0.26.7); configure emitted at start and activate on reaching
    # inactive, both under IfCondition(autostart) so that autostart:=false is honoured
    assert all(k.arg != "autostart" for k in node.keywords)
    changes = _calls(tree, "ChangeState")
    transitions = {ast.unparse(_kw(c, "transition_id")) for c in changes}
    assert transitions == {"Transition.TRANSITION_CONFIGURE", "Transition.TRANSITION_ACTIVATE"}, transitions
    (handler,) = _calls(tree, "OnStateTransition")
    assert _kw(handler, "goal_state").value == "inactive"
    conditions = [c for c in _calls(tree, "IfCondition")]
    assert len(conditions) == 2 and all(ast.unparse(c.args[0]) == "LaunchConfiguration('autostart')" for c in conditions)


def test_yaml_parameters_are_declared_and_valid():
    data = yaml.safe_load(YAML_FILE.read_text())
    params = _flatten(data["/**"]["ros__parameters"])
    assert set(params) == set(SPECS), set(params) ^ set(SPECS)
    for name, value in params.items():
        assert validate(name, value) is None, (name, value, validate(name, value))


def test_validate_rejects_with_reasons():
    assert "must be <=" in validate("facing.cone_deg", 500.0)
    assert "one of" in validate("backend", "cuda-magic")
    assert "int" in validate("queue_size", "3")
    assert validate("anchors.file", "../x") is not None
    assert validate("device", "gpu") is not None
    assert validate("nonexistent.param", 1) is not None
    assert validate("crop.margin", 1) is None  # ints are accepted for float parameters


def test_every_estimator_of_the_factory_is_a_choice_and_documented():
    from hpe_core.pipeline_factory import ESTIMATORS

    spec = SPECS["estimator"]
    assert list(spec.choices) == sorted(ESTIMATORS) and spec.default == "facemesh"
    for name in ESTIMATORS:
        assert validate("estimator", name) is None
        assert name in spec.description, name
    assert "one of" in validate("estimator", "no_such_estimator")
    # the parameter file's comment lists the same names
    (line,) = [line for line in YAML_FILE.read_text().splitlines() if line.strip().startswith("estimator:")]
    listed = {name.strip() for name in line.split("#", 1)[1].split("|")}
    assert listed == set(ESTIMATORS), line
