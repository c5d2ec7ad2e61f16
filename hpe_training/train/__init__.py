"""VGGT-HPE training: loss, configuration, mode set-up, the (DDP) training loop and ``hpe-train``.

Modules: :mod:`loss` (the paper's multi-stage pose loss), :mod:`config` (``TrainConfig``),
:mod:`schedule` (warm-up + cosine), :mod:`modes` (lora / full / head-only / scratch),
:mod:`batch` (the pair-sample contract), :mod:`sampling` (deterministic order and seeds),
:mod:`checkpointing`, :mod:`validation`, :mod:`distributed`, :mod:`data` (datasets from
dataset roots), :mod:`trainer` and :mod:`cli`.
"""
