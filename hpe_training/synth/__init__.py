"""Procedural synthetic head generator (``hpe-synth``).

Builds per-identity 3D head meshes with numpy, renders them headless on the CPU with
moderngl (EGL, Mesa llvmpipe) and writes the VGGT-HPE public on-disk layout
(``identity_XXXX/lighting_XX/expr_XX/view_XX/``).

Head frame (all modules): origin at the head centre (midway between the ears), axes
parallel to the OpenCV camera optical frame when the person faces the camera squarely:
x to the image right (the person's left), y down, z away from the camera, so the face and
nose point along head -z. A head-to-camera rotation equal to the identity means "facing
the camera". Units are metres.
"""
