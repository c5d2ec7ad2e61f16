"""Writing the VGGT-HPE public on-disk layout.

``<root>/identity_XXXX/lighting_XX/expr_XX/view_XX/`` holds
``output.png`` (RGB), ``output_opencv_camera.pkl`` ({R, t, K}: world-to-camera, pixels),
``output_object_transform_post_render.pkl`` ({R_world, t_world}: head-to-world),
``face_bbox.npy`` ([4] float32 x0, y0, x1, y1 pixels) and ``landmarks.npy``
([L, 2] float32 pixels, order ``LANDMARK_NAMES``). Per identity: ``identity.json``
(parameters) and ``landmarks_3d.json`` (head-frame metres per expression).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np


def view_dir(root: Path, identity: int, lighting: int, expr: int, view: int) -> Path:
    """Directory of one rendered view."""
    return (Path(root) / f"identity_{identity:04d}" / f"lighting_{lighting:02d}" / f"expr_{expr:02d}"
            / f"view_{view:02d}")


def encode_png(rgb: np.ndarray, compression: int = 3) -> bytes:
    """PNG bytes of an RGB uint8 image [H, W, 3]."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_view(directory: Path, png: bytes, K: np.ndarray, R_w2c: np.ndarray, t_w2c: np.ndarray,
               R_h2w: np.ndarray, t_h2w: np.ndarray, bbox: np.ndarray, landmarks: np.ndarray) -> None:
    """Write all files of one view (creates the directory).

    Args:
        png: encoded image.
        K: [3, 3] intrinsics; R_w2c [3, 3], t_w2c [3]: world-to-camera (metres).
        R_h2w [3, 3], t_h2w [3]: head-to-world (metres).
        bbox: [4] face box x0, y0, x1, y1 (pixels); landmarks: [L, 2] pixels.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "output.png").write_bytes(png)
    cam = {"R": np.asarray(R_w2c, np.float64), "t": np.asarray(t_w2c, np.float64).reshape(3),
           "K": np.asarray(K, np.float64)}
    obj = {"R_world": np.asarray(R_h2w, np.float64), "t_world": np.asarray(t_h2w, np.float64).reshape(3)}
    with open(directory / "output_opencv_camera.pkl", "wb") as fh:
        pickle.dump(cam, fh, protocol=4)
    with open(directory / "output_object_transform_post_render.pkl", "wb") as fh:
        pickle.dump(obj, fh, protocol=4)
    np.save(directory / "face_bbox.npy", np.asarray(bbox, np.float32))
    np.save(directory / "landmarks.npy", np.asarray(landmarks, np.float32))


def write_json(path: Path, data: dict) -> None:
    """Write pretty, key-sorted JSON (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
