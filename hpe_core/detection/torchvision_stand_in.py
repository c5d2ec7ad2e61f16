"""Scoped stand-ins for the two torchvision functions that facenet-pytorch imports.

facenet-pytorch 2.6.0 (``facenet_pytorch/models/utils/detect_face.py``) does, at import time::

    from torchvision.transforms import functional as F      # F.to_tensor used in extract_face
    from torchvision.ops.boxes import batched_nms            # used by MTCNN's three stages

torchvision cannot be installed on our machines (its only build for torch 2.13 links CUDA and
breaks ``import peft``), so this module provides our own ``batched_nms`` and ``to_tensor`` and
makes them importable under those torchvision names *only while facenet_pytorch is imported*:
:func:`import_facenet_pytorch` inserts light module objects into ``sys.modules``, imports the
package, and removes them again. This is safe because ``detect_face`` binds what it needs at
import time (the function ``batched_nms`` and the module object ``F``, whose ``to_tensor`` is
looked up at call time on the object it holds, not via ``sys.modules``). After the import no
``torchvision`` entry is left in ``sys.modules``, so nothing else in the process sees a fake
torchvision. If a real, working torchvision is importable it is used instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

_STAND_IN_MARK = "__hpe_torchvision_stand_in__"
_IMPORT_LOCK = threading.Lock()


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression (same contract as ``torchvision.ops.nms``).

    Args:
        boxes: ``[N, 4]`` float ``[x1, y1, x2, y2]`` (pixels; continuous areas, no ``+1``).
        scores: ``[N]`` float scores.
        iou_threshold: a box is dropped when its IoU with a kept, higher-scored box is
            strictly greater than this.

    Returns:
        ``[K]`` int64 indices into ``boxes`` of the kept boxes, by decreasing score.
        Memory is O(N) (one row of IoUs per kept box), time O(N * K).
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    remaining = torch.argsort(scores, descending=True, stable=True)
    keep: list[torch.Tensor] = []
    while remaining.numel() > 0:
        best = remaining[0]
        keep.append(best)
        rest = remaining[1:]
        if rest.numel() == 0:
            break
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        wh = (bottom_right - top_left).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        union = areas[best] + areas[rest] - inter
        iou = torch.where(union > 0, inter / union.clamp(min=torch.finfo(boxes.dtype).tiny), 0.0)
        remaining = rest[iou <= iou_threshold]
    return torch.stack(keep).to(torch.int64)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS run independently per category (same contract as ``torchvision.ops.batched_nms``).

    Args:
        boxes: ``[N, 4]`` float ``[x1, y1, x2, y2]``.
        scores: ``[N]`` float.
        idxs: ``[N]`` integer category of each box (MTCNN uses the image index in the batch);
            boxes of different categories never suppress each other.
        iou_threshold: see :func:`nms`.

    Returns:
        ``[K]`` int64 indices of kept boxes, sorted by decreasing score.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    kept = []
    for category in torch.unique(idxs):
        members = torch.nonzero(idxs == category).flatten()
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(kept)
    order = torch.argsort(scores[keep], descending=True, stable=True)
    return keep[order]


def to_tensor(pic: Any) -> torch.Tensor:
    """Image to ``[C, H, W]`` tensor (the subset of ``torchvision`` ``to_tensor`` we need).

    Args:
        pic: ``[H, W]`` or ``[H, W, C]`` numpy array, or a PIL image.

    Returns:
        ``[C, H, W]`` tensor; uint8 input becomes float32 scaled to ``[0, 1]``, any other
        dtype keeps its values and dtype (as torchvision does for numpy input).
    """
    if isinstance(pic, torch.Tensor):
        raise TypeError("to_tensor expects a numpy array or a PIL image, not a tensor")
    array = np.asarray(pic)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"to_tensor expects [H, W] or [H, W, C], got shape {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    if tensor.dtype == torch.uint8:
        return tensor.to(torch.float32).div(255.0)
    return tensor


def _real_torchvision_usable() -> bool:
    """True when a real torchvision with the two needed functions imports cleanly."""
    if "torchvision" in sys.modules:
        return not getattr(sys.modules["torchvision"], _STAND_IN_MARK, False)
    if importlib.util.find_spec("torchvision") is None:
        return False
    before = set(sys.modules)
    try:
        importlib.import_module("torchvision.ops.boxes")
        importlib.import_module("torchvision.transforms.functional")
        return True
    except Exception:  # a broken install (e.g. CUDA-only ops): undo the partial import
        for name in set(sys.modules) - before:
            if name == "torchvision" or name.startswith("torchvision."):
                del sys.modules[name]
        return False


def _make_stand_in_modules() -> dict[str, types.ModuleType]:
    """Module objects for exactly the torchvision names facenet-pytorch imports."""
    root = types.ModuleType("torchvision", "hpe_core stand-in (import-time only)")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    ops = types.ModuleType("torchvision.ops")
    ops_boxes = types.ModuleType("torchvision.ops.boxes")
    functional.to_tensor = to_tensor  # type: ignore[attr-defined]
    ops_boxes.batched_nms = batched_nms  # type: ignore[attr-defined]
    ops_boxes.nms = nms  # type: ignore[attr-defined]
    ops.boxes = ops_boxes  # type: ignore[attr-defined]
    ops.batched_nms = batched_nms  # type: ignore[attr-defined]
    ops.nms = nms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    root.ops = ops  # type: ignore[attr-defined]
    modules = {
        "torchvision": root,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
        "torchvision.ops": ops,
        "torchvision.ops.boxes": ops_boxes,
    }
    for module in modules.values():
        setattr(module, _STAND_IN_MARK, True)
    return modules


@contextmanager
def torchvision_stand_in() -> Iterator[bool]:
    """Make the stand-in torchvision modules importable inside the ``with`` block only.

    Yields:
        ``True`` if the stand-ins were installed, ``False`` if a real torchvision is used.
        On exit every inserted ``sys.modules`` entry is removed again.
    """
    if _real_torchvision_usable():
        yield False
        return
    modules = _make_stand_in_modules()
    inserted = [name for name in modules if name not in sys.modules]
    for name in inserted:
        sys.modules[name] = modules[name]
    try:
        yield True
    finally:
        for name in inserted:
            if sys.modules.get(name) is modules[name]:
                del sys.modules[name]


def import_facenet_pytorch() -> types.ModuleType:
    """Import ``facenet_pytorch.models.mtcnn`` with the torchvision stand-ins in scope.

    The package ``__init__`` also imports ``InceptionResnetV1`` (needs ``requests``; its
    weights are not shipped and are never loaded here) and the training utilities; neither
    needs torchvision. Thread-safe; later calls return the already imported module.

    Returns:
        The ``facenet_pytorch.models.mtcnn`` module (holds ``MTCNN``, ``PNet``, ``RNet``, ``ONet``).
    """
    with _IMPORT_LOCK:
        name = "facenet_pytorch.models.mtcnn"
        if name in sys.modules:
            return sys.modules[name]
        with torchvision_stand_in():
            return importlib.import_module(name)
