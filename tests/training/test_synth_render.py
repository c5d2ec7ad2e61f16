"""Rendering and the hpe-synth command: determinism, layout, projection consistency."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpe_training.data.camera import project_points
from hpe_training.synth.expression import Expression
from hpe_training.synth.head import LANDMARK_NAMES, build_head, shader_params
from hpe_training.synth.identity import sample_identity
from hpe_training.synth.mesh import MeshPart
from hpe_training.synth.render import egl_available
from hpe_training.synth.scene import (Lighting, ViewSample, body_transform, head_transform, make_intrinsics,
                                      sample_background)

pytestmark = pytest.mark.skipif(not egl_available(), reason="no headless EGL/OpenGL 3.3 (Mesa llvmpipe) here")

LIGHT = Lighting((0.3, -0.4, -0.85), (2.0, 2.0, 2.0), (-0.4, 0.0, -0.9), (0.4, 0.4, 0.4),
                 (0.3, 0.3, 0.3), (0.15, 0.15, 0.15), 1.0)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_is_deterministic_and_writes_the_layout(tmp_path):
    from hpe_training.synth.cli import main

    def args(seed: int) -> list[str]:
        return ["--identities", "2", "--lightings", "1", "--expressions", "2", "--views", "2", "--size", "64",
                "--seed", str(seed), "--identity-offset", "3", "--quiet", "--mesh-level", "4"]

    assert main(["--out", str(tmp_path / "a")] + args(5)) == 0
    assert main(["--out", str(tmp_path / "b")] + args(5)) == 0
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    views = sorted(k for k in a if k.endswith("output.png"))
    assert len(views) == 2 * 2 * 2
    assert views[0] == "identity_0003/lighting_00/expr_00/view_00/output.png"
    for name in ("output_opencv_camera.pkl", "output_object_transform_post_render.pkl", "face_bbox.npy",
                 "landmarks.npy"):
        assert f"identity_0004/lighting_00/expr_01/view_01/{name}" in a
    meta = json.loads(a["meta.json"])
    assert meta["seed"] == 5 and meta["counts"]["frames"] == 8 and meta["identity_offset"] == 3
    assert "z away from the camera" in meta["head_frame"] and meta["landmark_names"] == list(LANDMARK_NAMES)
    lm3d = json.loads(a["identity_0003/landmarks_3d.json"])
    assert np.array(lm3d["expressions"]["expr_01"]).shape == (6, 3)
    # another seed gives other pixels
    assert main(["--out", str(tmp_path / "c")] + args(6)) == 0
    c = _files(tmp_path / "c")
    assert c[views[0]] != a[views[0]]


def test_cli_rejects_bad_counts(tmp_path, capsys):
    from hpe_training.synth.cli import main

    assert main(["--out", str(tmp_path), "--identities", "0"]) == 2
    assert "identities" in capsys.readouterr().err


def _head_only(mesh: MeshPart, n: int) -> MeshPart:
    keep = (mesh.faces < n).all(axis=1)
    return MeshPart(positions=mesh.positions[:n], rest=mesh.rest[:n], colors=mesh.colors[:n],
                    material=mesh.material[:n], faces=mesh.faces[keep], kind=mesh.kind[:n],
                    normals=mesh.normals[:n])


def _frontal_view(size: int, R: np.ndarray, t: np.ndarray, fov: float = 40.0) -> ViewSample:
    bg = sample_background(np.random.default_rng(0), 0)
    return ViewSample(R_h2c=R, t_h2c=np.asarray(t, float), K=make_intrinsics(size, fov), R_b2c=R,
                      background=bg, euler_deg=(0.0, 0.0, 0.0))


@pytest.mark.parametrize("euler", [(0.0, 0.0, 0.0), (50.0, -20.0, 15.0), (-85.0, 30.0, -35.0)])
def test_rendered_silhouette_matches_projection_with_K(euler):
    """The GL projection built from K puts the head exactly where K, R, t project it."""
    from hpe_training.synth.render import HeadRenderer
    from hpe_training.synth.scene import euler_to_matrix

    size = 160
    idp = sample_identity(1, 0)
    head = build_head(idp, Expression("neutral"), level=4)
    mesh = _head_only(head.mesh, len(head.head_vertices))
    view = _frontal_view(size, euler_to_matrix(*euler), [0.03, -0.02, 0.75])
    r = HeadRenderer(size, samples=0)
    try:
        r.set_mesh(mesh, shader_params(idp, Expression("neutral")))
        rgba = r.render(view.K, head_transform(view), body_transform(view), LIGHT, None)
    finally:
        r.release()
    mask = rgba[:, :, 3] > 127
    rows, cols = np.nonzero(mask)
    uv = project_points(view.K, view.R_h2c, view.t_h2c, mesh.positions)
    # pixel centres at integers: the covered pixels span the projected extent within 1 px
    assert abs(cols.min() - uv[:, 0].min()) < 1.0 and abs(cols.max() - uv[:, 0].max()) < 1.0
    assert abs(rows.min() - uv[:, 1].min()) < 1.0 and abs(rows.max() - uv[:, 1].max()) < 1.0
    # the projected nose tip is on the head
    nose = np.round(project_points(view.K, view.R_h2c, view.t_h2c, head.landmarks[:1])[0]).astype(int)
    assert mask[nose[1], nose[0]]


def test_identity_head_to_camera_looks_frontal():
    """R_h2c = I: nose in front of the centre, person's left eye on the image right."""
    from hpe_training.synth.render import HeadRenderer

    size = 128
    idp = sample_identity(2, 5)
    expr = Expression("neutral")
    head = build_head(idp, expr, level=4)
    view = _frontal_view(size, np.eye(3), [0.0, 0.0, 0.7])
    lm = dict(zip(LANDMARK_NAMES, project_points(view.K, view.R_h2c, view.t_h2c, head.landmarks)))
    assert abs(lm["nose_tip"][0] - lm["head_centre"][0]) < 1.0
    assert lm["right_eye"][0] < lm["nose_tip"][0] - 5 and lm["left_eye"][0] > lm["nose_tip"][0] + 5
    assert lm["mouth_right"][0] < lm["nose_tip"][0] < lm["mouth_left"][0]
    assert lm["left_eye"][1] < lm["nose_tip"][1] < lm["mouth_left"][1]
    r = HeadRenderer(size, samples=0)
    try:
        r.set_mesh(head.mesh, shader_params(idp, expr))
        rgba = r.render(view.K, head_transform(view), body_transform(view), LIGHT, None)
        # a frontal face is nearly left-right symmetric in the image; a profile is not
        cols = np.nonzero(rgba[: size // 2, :, 3] > 127)[1]
        assert abs(cols.mean() - size / 2) < 3.0
        from hpe_training.synth.scene import euler_to_matrix

        side = _frontal_view(size, euler_to_matrix(80.0, 0.0, 0.0), [0.0, 0.0, 0.7])
        rgba_side = r.render(side.K, head_transform(side), body_transform(side), LIGHT, None)
    finally:
        r.release()
    nose_side = project_points(side.K, side.R_h2c, side.t_h2c, head.landmarks[:1])[0]
    assert nose_side[0] < size / 2 - 10  # yaw +80: the face turns to the image left
    dark_eye = rgba[int(round(lm["left_eye"][1])), int(round(lm["left_eye"][0])), :3].mean()
    cheek = rgba[int(round(lm["left_eye"][1] + 0.5 * (lm["mouth_left"][1] - lm["left_eye"][1]))),
                 int(round(lm["left_eye"][0])), :3].mean()
    assert dark_eye < cheek  # the pupil renders where the eye landmark projects
    assert (rgba_side[:, :, 3] > 127).sum() > 0


def test_contact_sheet_and_benchmark_run(tmp_path):
    from hpe_training.synth.bench import benchmark
    from hpe_training.synth.contact_sheet import main as sheet_main

    out = tmp_path / "sheet.png"
    assert sheet_main(["--out", str(out), "--rows", "1", "--cols", "2", "--tile", "40"]) == 0
    import cv2

    sheet = cv2.imread(str(out))
    assert sheet.shape == (40, 80, 3) and sheet.std() > 5
    stats = benchmark(size=64, frames=10, msaa=0, mesh_level=4)
    assert stats["frames"] == 10 and stats["render_fps_wall"] > 0 and stats["triangles"] > 1000
