"""VGGTCamera API and structural properties (no oracle needed)."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor

from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera
from hpe_core.vggt.random_weights import randomize_parameters


@pytest.fixture(scope="module")
def tiny() -> VGGTCamera:
    return randomize_parameters(VGGTCamera(get_preset("tiny")), seed=3, std=0.1).eval()


def _images(b: int, s: int, h: int = 56, w: int = 56, seed: int = 0) -> Tensor:
    return torch.rand(b, s, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_forward_shapes_and_fov_activation(tiny: VGGTCamera) -> None:
    with torch.no_grad():
        poses = tiny(_images(2, 3))
    assert len(poses) == tiny.config.camera_head.num_iterations == 4
    for pose in poses:
        assert pose.shape == (2, 3, 9)
        assert torch.isfinite(pose).all()
        assert (pose[..., 7:] >= 0).all()  # relu on the field of view


def test_single_frame_and_non_square_inputs(tiny: VGGTCamera) -> None:
    with torch.no_grad():
        assert tiny(_images(1, 1))[-1].shape == (1, 1, 9)
        assert tiny(_images(1, 2, h=42, w=84))[-1].shape == (1, 2, 9)


def test_non_reference_frames_are_permutation_equivariant(tiny: VGGTCamera) -> None:
    """Frames 1..S-1 share one learned token and the same RoPE positions, so swapping two of
    them swaps their outputs; frame 0 is special, so moving it changes the result."""
    images = _images(1, 3, seed=1)
    with torch.no_grad():
        ref = tiny(images)[-1]
        swapped = tiny(images[:, [0, 2, 1]])[-1]
        new_reference = tiny(images[:, [1, 0, 2]])[-1]
    torch.testing.assert_close(swapped, ref[:, [0, 2, 1]], atol=1e-5, rtol=1e-5)
    assert (new_reference[:, 1] - ref[:, 0]).abs().max() > 1e-3


def test_batch_elements_are_independent(tiny: VGGTCamera) -> None:
    images = _images(2, 2, seed=2)
    with torch.no_grad():
        both = tiny(images)[-1]
        first = tiny(images[:1])[-1]
    torch.testing.assert_close(both[:1], first, atol=1e-5, rtol=1e-5)


def test_cached_anchor_tokens_give_the_same_poses(tiny: VGGTCamera) -> None:
    anchor, query = _images(1, 1, seed=3)[:, 0], _images(1, 1, seed=4)[:, 0]
    with torch.no_grad():
        direct = tiny(torch.stack((anchor, query), dim=1))
        anchor_tokens = tiny.embed_frames(anchor)  # computed once, cached
        query_tokens = tiny.embed_frames(query)
        cached = tiny.forward_from_patch_tokens(torch.stack((anchor_tokens, query_tokens), dim=1), (56, 56))
    assert anchor_tokens.shape == (1, 16, 64)
    for a, b in zip(direct, cached):
        assert torch.equal(a, b)


def test_input_validation(tiny: VGGTCamera) -> None:
    with pytest.raises(ValueError, match=r"\[B, S, 3, H, W\]"):
        tiny(torch.rand(2, 3, 56, 56))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        tiny(torch.rand(1, 2, 3, 50, 56))
    with pytest.raises(ValueError, match="patch tokens do not match"):
        tiny.forward_from_patch_tokens(torch.rand(1, 2, 16, 64), (56, 70))
    with pytest.raises(TypeError):
        VGGTCamera({"img_size": 56})  # type: ignore[arg-type]


def test_every_parameter_except_the_mask_token_gets_a_gradient() -> None:
    """No dead path: one backward pass reaches every parameter (DINOv2's mask_token is kept
    only so that official checkpoints load strictly; it is unused at inference)."""
    model = randomize_parameters(VGGTCamera(get_preset("tiny")), seed=4, std=0.1).train()
    loss = sum(p.square().mean() for p in model(_images(1, 2, seed=5)))
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == ["aggregator.patch_embed.mask_token"]
