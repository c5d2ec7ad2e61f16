"""Typed configuration of the camera-branch VGGT (aggregator + camera head).

The JSON format is the one of the shared numerical oracle (``vggt_tiny_config.json``):
top-level aggregator fields, a nested ``patch_embed`` object (the DINOv2-with-registers
ViT) and a nested ``camera_head`` object. Fields missing from a JSON file take the
defaults below (the defaults of the official 1B model); unknown fields are rejected.

Two sizes, both square sides in pixels:

* ``img_size``: the size the DINOv2 positional embedding is built for. It sets a parameter
  shape (``aggregator.patch_embed.pos_embed`` is ``[1, (img_size / patch_size)**2 + 1, C]``;
  other sizes resample it, bicubic), so it stays the architecture's value (518 for the
  official weights) whatever size a model is trained or run at;
* ``trained_img_size``: the size the weights were trained at (set by ``hpe-train`` to its
  ``image_size``), the default input size of export and inference (:attr:`VGGTConfig.default_input_size`).
  It sets no shape. ``None`` (the presets, the oracle) means ``img_size`` and is left out of
  the JSON, so files without it read as before.

``trained_crop`` (set by ``hpe-train`` from its data's crop) is the face crop the weights were
trained on: ``"paper"`` (VGGT-HPE's box crop) or ``"aligned"`` (landmark-normalised,
:mod:`hpe_core.aligned_crop`); every backend asks the pipeline for it
(:attr:`hpe_core.estimator.interface.PoseEstimator.crop_mode`). ``None`` means ``"paper"`` and
is left out of the JSON like ``trained_img_size``.

Presets (see :func:`get_preset`):

* ``"vggt-1b"``: the official VGGT-1B camera branch (518 px, ViT-L/14, 24 steps).
* ``"tiny"``: the oracle configuration (56 px, embed 64, depth 2; 0.8 M parameters).
* ``"small"``: a CPU-trainable model (112 px, embed 192, depth 4; about 9.5 M parameters).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from hpe_core.bounded_json import load_bounded

PathLike = Union[str, Path]

_PATCH_EMBED_KINDS = ("dinov2_reg",)
_POSE_ENCODINGS = ("absT_quaR_FoV",)
_ACTIVATIONS = ("linear", "relu", "exp", "inv_log")
_AA_KINDS = ("frame", "global")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_fields(cls: type, data: Mapping[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(known)}")


@dataclass
class PatchEmbedConfig:
    """DINOv2-with-registers ViT used as the per-frame patch embedding.

    Its width, image size, patch size and register count are those of the enclosing
    :class:`VGGTConfig` (the official code builds it from the same arguments).
    """

    kind: str = "dinov2_reg"
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 1.0  # LayerScale init (DINOv2 default 1.0)
    interpolate_antialias: bool = True
    interpolate_offset: float = 0.0
    norm_eps: float = 1e-6  # DINOv2 LayerNorm epsilon

    def __post_init__(self) -> None:
        _require(self.kind in _PATCH_EMBED_KINDS,
                 f"patch_embed.kind must be one of {_PATCH_EMBED_KINDS}, got {self.kind!r}")
        _require(self.depth >= 1, f"patch_embed.depth must be >= 1, got {self.depth}")
        _require(self.num_heads >= 1, f"patch_embed.num_heads must be >= 1, got {self.num_heads}")
        _require(self.mlp_ratio > 0, f"patch_embed.mlp_ratio must be > 0, got {self.mlp_ratio}")
        _require(self.init_values > 0, f"patch_embed.init_values must be > 0, got {self.init_values}")
        _require(self.interpolate_offset >= 0,
                 f"patch_embed.interpolate_offset must be >= 0, got {self.interpolate_offset}")
        _require(self.norm_eps > 0, f"patch_embed.norm_eps must be > 0, got {self.norm_eps}")


@dataclass
class CameraHeadConfig:
    """Iterative camera head: adaLN-modulated transformer trunk over the camera token.

    ``dim_in`` must be twice the aggregator width (frame and global outputs concatenated).
    """

    dim_in: int = 2048
    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 0.01
    num_iterations: int = 4
    pose_encoding: str = "absT_quaR_FoV"
    trans_act: str = "linear"
    quat_act: str = "linear"
    fl_act: str = "relu"

    def __post_init__(self) -> None:
        _require(self.dim_in >= 1, f"camera_head.dim_in must be >= 1, got {self.dim_in}")
        _require(self.trunk_depth >= 1, f"camera_head.trunk_depth must be >= 1, got {self.trunk_depth}")
        _require(self.num_heads >= 1 and self.dim_in % self.num_heads == 0,
                 f"camera_head.num_heads ({self.num_heads}) must divide dim_in ({self.dim_in})")
        _require(self.dim_in % 2 == 0, f"camera_head.dim_in must be even, got {self.dim_in}")
        _require(self.mlp_ratio > 0, f"camera_head.mlp_ratio must be > 0, got {self.mlp_ratio}")
        _require(self.init_values > 0, f"camera_head.init_values must be > 0, got {self.init_values}")
        _require(self.num_iterations >= 1,
                 f"camera_head.num_iterations must be >= 1, got {self.num_iterations}")
        _require(self.pose_encoding in _POSE_ENCODINGS,
                 f"camera_head.pose_encoding must be one of {_POSE_ENCODINGS}, got {self.pose_encoding!r}")
        for name in ("trans_act", "quat_act", "fl_act"):
            value = getattr(self, name)
            _require(value in _ACTIVATIONS,
                     f"camera_head.{name} must be one of {_ACTIVATIONS}, got {value!r}")

    @property
    def pose_dim(self) -> int:
        """Length of the pose encoding (9 for ``absT_quaR_FoV``)."""
        return 9


#: Values of :attr:`VGGTConfig.trained_crop`.
TRAINED_CROPS = (None, "paper", "aligned")


@dataclass
class VGGTConfig:
    """Camera-branch VGGT: DINOv2 patch embed, alternating-attention aggregator, camera head.

    ``img_size`` (pixels) fixes the positional-embedding shape; ``trained_img_size`` (pixels,
    or None for ``img_size``) is the crop size the weights were trained at and the default
    input size (see the module docstring).
    """

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qk_norm: bool = True
    rope_freq: float = 100.0
    init_values: float = 0.01
    aa_order: Tuple[str, ...] = ("frame", "global")
    aa_block_size: int = 1
    norm_eps: float = 1e-5  # aggregator block LayerNorm epsilon (torch default)
    patch_embed: PatchEmbedConfig = field(default_factory=PatchEmbedConfig)
    camera_head: CameraHeadConfig = field(default_factory=CameraHeadConfig)
    trained_img_size: Optional[int] = None
    trained_crop: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.patch_embed, Mapping):
            self.patch_embed = _build(PatchEmbedConfig, self.patch_embed, "patch_embed")
        if isinstance(self.camera_head, Mapping):
            self.camera_head = _build(CameraHeadConfig, self.camera_head, "camera_head")
        self.aa_order = tuple(self.aa_order)
        _require(self.patch_size >= 1, f"patch_size must be >= 1, got {self.patch_size}")
        _require(self.img_size >= self.patch_size and self.img_size % self.patch_size == 0,
                 f"img_size ({self.img_size}) must be a positive multiple of patch_size ({self.patch_size})")
        _require(self.trained_img_size is None
                 or (isinstance(self.trained_img_size, int) and not isinstance(self.trained_img_size, bool)
                     and self.trained_img_size >= self.patch_size
                     and self.trained_img_size % self.patch_size == 0),
                 f"trained_img_size ({self.trained_img_size!r}) must be null or a positive multiple of "
                 f"patch_size ({self.patch_size})")
        _require(self.trained_crop in TRAINED_CROPS,
                 f"trained_crop ({self.trained_crop!r}) must be one of {TRAINED_CROPS}")
        _require(self.embed_dim >= 1, f"embed_dim must be >= 1, got {self.embed_dim}")
        _require(self.depth >= 1, f"depth must be >= 1, got {self.depth}")
        _require(self.num_heads >= 1 and self.embed_dim % self.num_heads == 0,
                 f"num_heads ({self.num_heads}) must divide embed_dim ({self.embed_dim})")
        _require(self.embed_dim % self.patch_embed.num_heads == 0,
                 f"patch_embed.num_heads ({self.patch_embed.num_heads}) must divide embed_dim ({self.embed_dim})")
        head_dim = self.embed_dim // self.num_heads
        _require(head_dim % 4 == 0,
                 f"head dim embed_dim/num_heads = {head_dim} must be a multiple of 4 for 2D RoPE")
        _require(self.mlp_ratio > 0, f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        _require(self.num_register_tokens >= 0,
                 f"num_register_tokens must be >= 0, got {self.num_register_tokens}")
        _require(self.rope_freq > 0, f"rope_freq must be > 0, got {self.rope_freq}")
        _require(self.init_values > 0, f"init_values must be > 0, got {self.init_values}")
        _require(len(self.aa_order) >= 1 and all(k in _AA_KINDS for k in self.aa_order),
                 f"aa_order must be a non-empty sequence of {_AA_KINDS}, got {self.aa_order}")
        _require(sorted(self.aa_order) == sorted(_AA_KINDS),
                 f"aa_order must contain 'frame' and 'global' once each, got {self.aa_order}")
        _require(self.aa_block_size >= 1 and self.depth % self.aa_block_size == 0,
                 f"aa_block_size ({self.aa_block_size}) must divide depth ({self.depth})")
        _require(self.norm_eps > 0, f"norm_eps must be > 0, got {self.norm_eps}")
        _require(self.camera_head.dim_in == 2 * self.embed_dim,
                 f"camera_head.dim_in ({self.camera_head.dim_in}) must equal 2 * embed_dim "
                 f"({2 * self.embed_dim})")

    # ------------------------------------------------------------------ derived
    @property
    def head_dim(self) -> int:
        """Per-head width of the aggregator attention."""
        return self.embed_dim // self.num_heads

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token in a frame's token sequence (camera + registers)."""
        return 1 + self.num_register_tokens

    @property
    def pose_dim(self) -> int:
        """Length of the pose encoding."""
        return self.camera_head.pose_dim

    @property
    def default_input_size(self) -> int:
        """Square input side (pixels) export and inference use unless told otherwise: the size
        the weights were trained at (``trained_img_size``), else ``img_size``."""
        return self.trained_img_size if self.trained_img_size is not None else self.img_size

    @property
    def crop_mode(self) -> str:
        """The crop the weights were trained on: ``"paper"`` or ``"aligned"``."""
        return self.trained_crop or "paper"

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VGGTConfig":
        """Build from a dict in the oracle's JSON layout; raises ValueError on unknown fields."""
        if not isinstance(data, Mapping):
            raise ValueError(f"config must be a JSON object, got {type(data).__name__}")
        return _build(cls, data, "config")

    @classmethod
    def from_json(cls, path: PathLike) -> "VGGTConfig":
        """Read a config JSON file (the oracle's ``vggt_tiny_config.json`` format)."""
        path = Path(path)
        try:
            data = load_bounded(path)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-serialisable dict; ``from_dict(to_dict())`` reproduces the config.
        ``trained_img_size`` is left out when None (files as written before it existed)."""
        out = dataclasses.asdict(self)
        out["aa_order"] = list(self.aa_order)
        for optional in ("trained_img_size", "trained_crop"):
            if out[optional] is None:
                del out[optional]
        return out

    def to_json(self, path: PathLike | None = None) -> str:
        """Serialise to JSON text; also writes it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, sort_keys=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    _check_fields(cls, data, where)
    return cls(**dict(data))


def _preset_vggt_1b() -> VGGTConfig:
    return VGGTConfig()


def _preset_tiny() -> VGGTConfig:
    return VGGTConfig(
        img_size=56, patch_size=14, embed_dim=64, depth=2, num_heads=4, mlp_ratio=4.0,
        num_register_tokens=4, qk_norm=True, rope_freq=100.0, init_values=0.01,
        patch_embed=PatchEmbedConfig(depth=2, num_heads=4, mlp_ratio=4.0, init_values=1.0),
        camera_head=CameraHeadConfig(dim_in=128, trunk_depth=2, num_heads=4, mlp_ratio=4.0,
                                     init_values=0.01, num_iterations=4),
    )


def _preset_small() -> VGGTConfig:
    return VGGTConfig(
        img_size=112, patch_size=14, embed_dim=192, depth=4, num_heads=3, mlp_ratio=4.0,
        num_register_tokens=4, qk_norm=True, rope_freq=100.0, init_values=0.01,
        patch_embed=PatchEmbedConfig(depth=4, num_heads=3, mlp_ratio=4.0, init_values=1.0),
        camera_head=CameraHeadConfig(dim_in=384, trunk_depth=2, num_heads=6, mlp_ratio=4.0,
                                     init_values=0.01, num_iterations=4),
    )


_PRESETS = {"vggt-1b": _preset_vggt_1b, "tiny": _preset_tiny, "small": _preset_small}
PRESET_NAMES: Tuple[str, ...] = tuple(_PRESETS)


def get_preset(name: str) -> VGGTConfig:
    """Return a fresh config for a named preset (``vggt-1b``, ``tiny``, ``small``)."""
    try:
        return _PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown VGGT preset {name!r}; choose one of {PRESET_NAMES}") from None
