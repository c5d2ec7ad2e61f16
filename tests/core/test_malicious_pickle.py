"""A pickle that runs code when unpickled is refused by every loader we have, unexecuted.

The payload's unpickling would create a marker file (``open(marker, "w")``). Each loader is
fed it in the form that loader reads (raw pickle, a torch zip checkpoint, an ``.npz`` object
array inside a checksum-valid anchor pool file, a dataset pose pickle); each must raise its
own clear error, and the marker must never appear. The first test shows the bytes really run
code with the standard unpickler, so the others cannot pass for want of a working payload.
"""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hpe_core.anchors import persistence
from hpe_core.pipeline_factory import DEFAULT_MODEL_DIR
from hpe_core.vggt.checkpoints import CheckpointError, load_model, read_state_dict


class CreatesMarker:
    """Unpickles to a call of ``open(path, "w")``: loading it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code_ran.marker"


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"aggregator.weight": CreatesMarker(marker)}, protocol=4)


def test_the_payload_really_executes_with_plain_pickle(tmp_path: Path) -> None:
    other = tmp_path / "proof.marker"
    pickle.loads(_evil_pickle(other))["aggregator.weight"].close()
    assert other.exists()


def test_torch_checkpoint_loader_refuses_raw_and_zip_pickles(tmp_path: Path, marker: Path) -> None:
    raw = tmp_path / "model.pt"
    raw.write_bytes(_evil_pickle(marker))
    with pytest.raises(CheckpointError, match="weights_only"):
        read_state_dict(raw)
    zipped = tmp_path / "zipped.pth"
    torch.save({"state_dict": {"aggregator.w": torch.zeros(1)}, "extra": CreatesMarker(marker)}, zipped)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_state_dict(zipped)
    # a checkpoint directory whose weights file is the pickle (safetensors never unpickles)
    directory = tmp_path / "ckpt"
    directory.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "torch" / "config.json", directory / "config.json")
    (directory / "model.safetensors").write_bytes(_evil_pickle(marker))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_model(directory)
    assert not marker.exists()


def _pool_file(path: Path, payload: bytes) -> None:
    header = {"format": persistence.FORMAT_NAME, "version": persistence.FORMAT_VERSION,
              "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest()}
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)


def test_anchor_pool_loader_refuses_pickles(tmp_path: Path, marker: Path) -> None:
    raw = tmp_path / "raw.hpepool"
    raw.write_bytes(_evil_pickle(marker))
    with pytest.raises(persistence.AnchorPoolFileError, match="not an hpe-anchor-pool"):
        persistence.load(raw)
    # A checksum-valid pool file whose npz holds object arrays (numpy pickles those).
    buffer = io.BytesIO()
    evil_array = np.empty(1, dtype=object)
    evil_array[0] = CreatesMarker(marker)
    np.savez(buffer, metadata=evil_array, pose_cam=evil_array, virtual_from_cam=evil_array)
    inside = tmp_path / "inside.hpepool"
    _pool_file(inside, buffer.getvalue())
    with pytest.raises(persistence.AnchorPoolFileError, match="invalid anchor pool contents"):
        persistence.load(inside)
    assert not marker.exists()


def test_training_layout_reader_refuses_a_pose_pickle(tmp_path: Path, marker: Path) -> None:
    import cv2

    from hpe_training.data.layout import CAMERA_NAME, IMAGE_NAME, LayoutReader
    from hpe_training.data.safe_pickle import UnsafePickleError

    view = tmp_path / "data" / "identity_0" / "lighting_0" / "expr_0" / "view_0"
    view.mkdir(parents=True)
    cv2.imwrite(str(view / IMAGE_NAME), np.full((40, 50, 3), 128, np.uint8))
    (view / CAMERA_NAME).write_bytes(_evil_pickle(marker))
    reader = LayoutReader(tmp_path / "data")
    with pytest.raises(UnsafePickleError, match="open"):
        reader.load_annotation(reader.samples[0])
    assert not marker.exists()
