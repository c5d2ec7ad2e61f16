"""Tests of the torchvision stand-ins (batched NMS, to_tensor) and their import scoping."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from hpe_core.detection.torchvision_stand_in import (
    batched_nms,
    nms,
    to_tensor,
    torchvision_stand_in,
)


def reference_batched_nms(boxes, scores, idxs, threshold):
    """Plain-Python greedy NMS per category (independent, slow, obviously correct)."""
    boxes = boxes.tolist()
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    kept = []
    for i in order:
        ok = True
        for j in kept:
            if int(idxs[i]) != int(idxs[j]):
                continue
            ix = max(0.0, min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]))
            iy = max(0.0, min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]))
            inter = ix * iy
            area_i = (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])
            area_j = (boxes[j][2] - boxes[j][0]) * (boxes[j][3] - boxes[j][1])
            if inter / (area_i + area_j - inter) > threshold:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


def test_nms_small_case_by_hand():
    boxes = torch.tensor(
        [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [5, 0, 15, 10]], dtype=torch.float32
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # Box 3 (best) overlaps box 0 with IoU 1/3 and box 1 with IoU 0.6/1.4=0.43: both kept at
    # 0.5; box 1 overlaps box 0 with IoU 0.82 -> suppressed by box 0. Box 2 is alone.
    assert nms(boxes, scores, 0.5).tolist() == [3, 0, 2]
    # At 0.3 box 3 also suppresses boxes 0 and 1.
    assert nms(boxes, scores, 0.3).tolist() == [3, 2]


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    n = 150
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 40 + 5
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(n, generator=g)
    idxs = torch.randint(0, 3, (n,), generator=g)
    for threshold in (0.3, 0.5, 0.7):
        got = batched_nms(boxes, scores, idxs, threshold).tolist()
        assert got == reference_batched_nms(boxes, scores, idxs, threshold)


def test_batched_nms_empty_and_dtype():
    out = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert out.shape == (0,) and out.dtype == torch.int64


def test_to_tensor_layout_and_scaling():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    t = to_tensor(image)
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32
    assert float(t[1, 0, 2]) == pytest.approx(image[0, 2, 1] / 255.0)
    f = to_tensor(image.astype(np.float32))  # float input keeps its values (facenet's use)
    assert f.dtype == torch.float32 and f[2, 1, 0] == float(image[1, 0, 2])
    assert to_tensor(image[:, :, 0]).shape == (1, 2, 3)


def test_stand_in_is_visible_only_inside_the_scope():
    assert "torchvision" not in sys.modules
    with torchvision_stand_in() as installed:
        assert installed  # no real torchvision on this machine
        from torchvision.ops.boxes import batched_nms as imported

        assert imported is batched_nms
    assert not [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]
    with pytest.raises(ModuleNotFoundError):
        import torchvision  # noqa: F401


def test_stand_in_removed_after_an_exception():
    with pytest.raises(RuntimeError):
        with torchvision_stand_in():
            raise RuntimeError("boom")
    assert "torchvision" not in sys.modules


@pytest.fixture
def forget_torchvision():
    """Remove any torchvision modules a test imported from a temporary directory."""
    yield
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def write_package(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_working_torchvision_is_used_instead(tmp_path, monkeypatch, forget_torchvision):
    write_package(
        tmp_path,
        {
            "torchvision/__init__.py": "",
            "torchvision/ops/__init__.py": "",
            "torchvision/ops/boxes.py": "def batched_nms(*args):\n    return 'real'\n",
            "torchvision/transforms/__init__.py": "",
            "torchvision/transforms/functional.py": "def to_tensor(x):\n    return 'real'\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with torchvision_stand_in() as installed:
        assert not installed
        from torchvision.ops.boxes import batched_nms as imported

        assert imported() == "real"


def test_a_broken_torchvision_is_replaced_and_cleaned_up(tmp_path, monkeypatch):
    # Like the CUDA-only wheel: the package imports a submodule, then fails.
    write_package(
        tmp_path,
        {
            "torchvision/__init__.py": (
                "from torchvision import _meta\n"
                "raise RuntimeError('operator torchvision::nms does not exist')\n"
            ),
            "torchvision/_meta.py": "",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with torchvision_stand_in() as installed:
        assert installed
        assert "torchvision._meta" not in sys.modules
        from torchvision.ops.boxes import batched_nms as imported

        assert imported is batched_nms
    assert not [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]
