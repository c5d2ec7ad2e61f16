"""Numerical parity of our VGGTCamera with the official VGGT oracle (shared/oracle)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hpe_core.vggt.config import VGGTConfig
from hpe_core.vggt.model import VGGTCamera
from hpe_core.vggt.parity_cli import main as parity_main
from hpe_core.vggt.rope import patch_grid_positions, rope_tables

REPO = Path(__file__).resolve().parents[2]
ORACLE = REPO.parent / "shared" / "oracle"
CONFIG = ORACLE / "vggt_tiny_config.json"
WEIGHTS = ORACLE / "vggt_tiny_weights.pt"
IO = ORACLE / "vggt_tiny_io.pt"
TOL = 1e-4

needs_oracle = pytest.mark.skipif(
    not all(p.is_file() for p in (CONFIG, WEIGHTS, IO)),
    reason=f"VGGT oracle files not found in {ORACLE} (expected <repo>/../shared/oracle)",
)
CASES = ["square_b2_s2", "wide_b1_s3"]


@pytest.fixture(scope="module")
def oracle_model() -> VGGTCamera:
    model = VGGTCamera(VGGTConfig.from_json(CONFIG)).eval()
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model


@pytest.fixture(scope="module")
def oracle_io() -> dict:
    return torch.load(IO, map_location="cpu", weights_only=True)


@needs_oracle
def test_oracle_io_holds_the_expected_cases(oracle_io: dict) -> None:
    for case in CASES:
        assert f"{case}.images" in oracle_io
        assert f"{case}.pose_enc.3" in oracle_io


@needs_oracle
@pytest.mark.parametrize("case", CASES)
def test_patch_tokens_match_oracle(oracle_model: VGGTCamera, oracle_io: dict, case: str) -> None:
    images = oracle_io[f"{case}.images"]
    b, s, _, h, w = images.shape
    with torch.no_grad():
        tokens = oracle_model.embed_frames(images.reshape(b * s, 3, h, w))
    ref = oracle_io[f"{case}.patch_tokens"]
    assert tokens.shape == ref.shape
    assert (tokens - ref).abs().max().item() < TOL


@needs_oracle
@pytest.mark.parametrize("case", CASES)
def test_aggregated_tokens_match_oracle(oracle_model: VGGTCamera, oracle_io: dict, case: str) -> None:
    with torch.no_grad():
        aggregated, patch_start_idx = oracle_model.aggregator(oracle_io[f"{case}.images"])
    assert patch_start_idx == 5
    refs = sorted(k for k in oracle_io if k.startswith(f"{case}.aggregated."))
    assert len(aggregated) == len(refs) == oracle_model.config.depth
    for i, out in enumerate(aggregated):
        ref = oracle_io[f"{case}.aggregated.{i}"]
        assert out.shape == ref.shape
        assert (out - ref).abs().max().item() < TOL, f"aggregated.{i}"


@needs_oracle
@pytest.mark.parametrize("case", CASES)
def test_pose_encodings_match_oracle(oracle_model: VGGTCamera, oracle_io: dict, case: str) -> None:
    images = oracle_io[f"{case}.images"]
    with torch.no_grad():
        poses = oracle_model(images)
    assert len(poses) == 4
    for k, pose in enumerate(poses):
        ref = oracle_io[f"{case}.pose_enc.{k}"]
        assert pose.shape == ref.shape == (images.shape[0], images.shape[1], 9)
        assert (pose - ref).abs().max().item() < TOL, f"pose_enc.{k}"
    # the oracle's outputs are far from zero, so the comparison is not trivially met
    assert oracle_io[f"{case}.pose_enc.3"].abs().max() > 1.0


@needs_oracle
@pytest.mark.parametrize("case", CASES)
def test_cached_patch_tokens_path_is_exact(oracle_model: VGGTCamera, oracle_io: dict, case: str) -> None:
    images = oracle_io[f"{case}.images"]
    b, s, _, h, w = images.shape
    with torch.no_grad():
        direct = oracle_model(images)
        tokens = oracle_model.embed_frames(images.reshape(b * s, 3, h, w))
        cached = oracle_model.forward_from_patch_tokens(tokens.reshape(b, s, *tokens.shape[1:]), (h, w))
    for a, c in zip(direct, cached):
        assert torch.equal(a, c)


@needs_oracle
def test_oracle_weights_do_not_fit_a_different_config() -> None:
    config = VGGTConfig.from_json(CONFIG)
    config.depth = 3
    config = VGGTConfig.from_dict(config.to_dict())
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    with pytest.raises(RuntimeError):
        VGGTCamera(config).load_state_dict(state, strict=True)


# ------------------------------------------------------------------ RoPE building blocks
def test_position_grid_equals_cartesian_product() -> None:
    h, w = 3, 5
    ref = torch.cartesian_prod(torch.arange(h), torch.arange(w)) + 1
    pos = patch_grid_positions(h, w, num_special=5)
    assert pos.shape == (5 + h * w, 2)
    assert torch.equal(pos[:5], torch.zeros(5, 2, dtype=torch.long))
    assert torch.equal(pos[5:], ref)


def test_rope_tables_are_rotations_by_position() -> None:
    positions = torch.tensor([[0, 0], [2, 7], [4, 1]])
    cos, sin = rope_tables(positions, head_dim=16, base=100.0, dtype=torch.float32)
    assert cos.shape == sin.shape == (3, 16)
    assert torch.allclose(cos ** 2 + sin ** 2, torch.ones_like(cos), atol=1e-6)
    assert torch.allclose(cos[0], torch.ones(16))
    # row half: lowest frequency is 1 -> angle equals the row index; column half likewise
    assert torch.isclose(cos[1, 0], torch.cos(torch.tensor(2.0)))
    assert torch.isclose(cos[1, 8], torch.cos(torch.tensor(7.0)))
    with pytest.raises(ValueError):
        rope_tables(positions, head_dim=6, base=100.0, dtype=torch.float32)


# ------------------------------------------------------------------ CLI
def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "hpe_core.vggt.parity_cli", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


@needs_oracle
def test_parity_cli_passes_on_the_oracle() -> None:
    proc = _run_cli("--config", str(CONFIG), "--weights", str(WEIGHTS), "--io", str(IO), "--tol", "1e-4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for case in CASES:
        assert f"{case}.patch_tokens" in proc.stdout
        assert f"{case}.aggregated.1" in proc.stdout
        assert f"{case}.pose_enc.3" in proc.stdout
    assert "PASS" in proc.stdout


@needs_oracle
def test_parity_cli_fails_on_perturbed_weights(tmp_path: Path) -> None:
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    state["aggregator.global_blocks.1.mlp.fc2.bias"] = state["aggregator.global_blocks.1.mlp.fc2.bias"] + 1e-2
    perturbed = tmp_path / "perturbed.pt"
    torch.save(state, perturbed)
    proc = _run_cli("--config", str(CONFIG), "--weights", str(perturbed), "--io", str(IO))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout
    # the frame-block outputs before the perturbed layer still match
    line = next(l for l in proc.stdout.splitlines() if l.startswith("square_b2_s2.patch_tokens"))
    assert line.rstrip().endswith("ok")


@needs_oracle
def test_parity_cli_rejects_weights_with_missing_keys(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    del state["camera_head.trunk_norm.weight"]
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    status = parity_main(["--config", str(CONFIG), "--weights", str(broken), "--io", str(IO)])
    assert status == 2
    assert "trunk_norm" in capsys.readouterr().err


@needs_oracle
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", CASES)
def test_pose_encodings_match_oracle_on_cuda(oracle_io: dict, case: str) -> None:
    model = VGGTCamera(VGGTConfig.from_json(CONFIG)).eval()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True), strict=True)
    model = model.cuda()
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            poses = model(oracle_io[f"{case}.images"].cuda())
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous
    for k, pose in enumerate(poses):
        assert (pose.cpu() - oracle_io[f"{case}.pose_enc.{k}"]).abs().max().item() < TOL
