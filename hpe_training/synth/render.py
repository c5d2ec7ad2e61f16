"""Headless CPU rendering of synthetic heads with moderngl (EGL, Mesa llvmpipe).

The projection is built from OpenCV intrinsics so that a head-frame point X lands, in the
read-back image (row 0 = top), at the pixel given by ``K (R X + t)`` with OpenCV's
convention that pixel (u, v) has its centre at integer coordinates.
"""
from __future__ import annotations

import numpy as np

from hpe_training.synth.mesh import MeshPart
from hpe_training.synth.scene import Background, Lighting

_MESH_VS = """
#version 330
uniform mat4 u_proj;
uniform mat4 u_head;
uniform mat4 u_body;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_rest;
in vec3 in_color;
in vec4 in_mat;
in float in_kind;
out vec3 v_pos;
out vec3 v_n;
out vec3 v_rest;
out vec3 v_col;
out vec2 v_mat;
flat out float v_kind;
void main() {
    float w = in_mat.w;
    vec4 p = mix(u_head * vec4(in_pos, 1.0), u_body * vec4(in_pos, 1.0), w);
    v_n = mix(mat3(u_head) * in_normal, mat3(u_body) * in_normal, w);
    v_pos = p.xyz;
    v_rest = in_rest;
    v_col = in_color;
    v_mat = in_mat.xy;  // hair amount, specular (the body weight is used above only)
    v_kind = in_kind;
    gl_Position = u_proj * p;
}
"""

_NOISE = """
uniform sampler3D u_noise;
float vnoise(vec3 x) { return texture(u_noise, x * (1.0 / 64.0)).r; }
float fbm(vec3 p) {
    return 0.65 * vnoise(p) + 0.35 * vnoise(p * 2.7 + vec3(0.37, 0.11, 0.73));
}
vec3 lin(vec3 c) { return pow(max(c, vec3(0.0)), vec3(2.2)); }
"""

_MESH_FS = """
#version 330
in vec3 v_pos;
in vec3 v_n;
in vec3 v_rest;
in vec3 v_col;
in vec2 v_mat;
flat in float v_kind;
uniform vec3 u_key_dir;
uniform vec3 u_key_rgb;
uniform vec3 u_fill_dir;
uniform vec3 u_fill_rgb;
uniform vec3 u_amb_top;
uniform vec3 u_amb_bottom;
uniform float u_exposure;
uniform vec3 u_hair_rgb;
uniform vec3 u_brow_rgb;
uniform vec3 u_lip_rgb;
uniform vec3 u_iris_rgb;
uniform vec4 u_mouth;
uniform vec4 u_brow;
uniform vec4 u_eye;
uniform vec4 u_mole;
uniform vec4 u_misc;
out vec4 f_color;
""" + _NOISE + """
void main() {
    vec3 r = v_rest;
    vec3 alb = lin(v_col);
    float spec = v_mat.y;
    float shin = 28.0;
    float wrap = 0.0;
    int kind = int(v_kind + 0.5);
    if (kind == 0) {
        wrap = 0.3;
        float n1 = fbm(r * 160.0);
        float n3 = vnoise(vec3(r.x * 2600.0, r.y * 500.0, 3.0));
        float n2 = vnoise(r * 2600.0);
        alb *= 0.88 + 0.24 * n1;
        alb *= 1.0 - 0.1 * smoothstep(0.62, 0.9, n2);
        bool front = r.z < 0.0;
        float my = u_mouth.x;
        float mw = u_mouth.y;
        if (front) {
            // stubble below the nose
            if (u_misc.x > 0.0) {
                float w = smoothstep(u_misc.z + 0.006, u_misc.z + 0.014, r.y) * smoothstep(0.065, 0.045, abs(r.x));
                float dots = step(0.5, n2);
                alb = mix(alb, alb * 0.35, w * u_misc.x * (0.35 + 0.65 * dots));
            }
            // eyelids: darker socket, lash line on the upper lid
            for (int k = 0; k < 2; k++) {
                float s = k == 0 ? -1.0 : 1.0;
                float q = pow((r.x - s * u_eye.x) / u_eye.z, 2.0) + pow((r.y - u_eye.y) / u_eye.w, 2.0);
                alb *= 1.0 - 0.3 * smoothstep(1.6, 0.3, q);
                float lash = smoothstep(0.95, 0.55, q) * smoothstep(u_eye.y + 0.001, u_eye.y - 0.002, r.y);
                alb = mix(alb, vec3(0.01), 0.9 * lash);
            }
            // eyebrows
            for (int k = 0; k < 2; k++) {
                float s = k == 0 ? -1.0 : 1.0;
                float xl = s * r.x;
                float x0 = 0.011;
                float x1 = u_eye.x + 0.021;
                float t = (xl - x0) / (x1 - x0);
                float yc = u_brow.x + s * u_brow.w - u_brow.z * sin(2.7 * clamp(t, 0.0, 1.0));
                float th = u_brow.y * (1.0 - 0.55 * clamp(t, 0.0, 1.0));
                float b = (1.0 - smoothstep(th * 0.4, th * 0.65, abs(r.y - yc)))
                          * smoothstep(-0.08, 0.06, t) * smoothstep(1.08, 0.95, t);
                b *= 0.55 + 0.6 * n3;
                alb = mix(alb, lin(u_brow_rgb), clamp(b, 0.0, 1.0));
            }
            // lips
            float ax = abs(r.x) / mw;
            if (ax < 1.05) {
                float prof = sqrt(max(0.0, 1.0 - ax * ax));
                float hu = u_mouth.z * (0.3 + 0.7 * prof) * (1.0 - 0.25 * exp(-pow(r.x / 0.004, 2.0)));
                float hl = u_mouth.w * (0.25 + 0.75 * prof);
                float up = smoothstep(my - hu - 0.0007, my - hu + 0.0007, r.y) * (1.0 - step(my, r.y));
                float lo = step(my, r.y) * (1.0 - smoothstep(my + hl - 0.0007, my + hl + 0.0007, r.y));
                float lip = max(up, lo) * smoothstep(1.05, 0.9, ax);
                alb = mix(alb, lin(u_lip_rgb) * (0.85 + 0.3 * n1), lip);
                spec = mix(spec, 0.3 + u_misc.w, lip);
            }
            // closed-mouth line between the lips
            if (ax < 1.0) {
                float lw = 0.00045 * (0.5 + 0.5 * sqrt(max(0.0, 1.0 - ax * ax)));
                alb = mix(alb, alb * 0.12, 1.0 - smoothstep(lw * 0.5, lw, abs(r.y - my)));
            }
            // mole
            if (u_mole.w > 0.0) {
                float dm = length(r.xy - u_mole.xy);
                alb = mix(alb, vec3(0.05, 0.025, 0.015), 1.0 - smoothstep(u_mole.w * 0.6, u_mole.w, dm));
            }
        }
        // hair with a ragged hairline and strand texture
        float h = v_mat.x;
        if (h > 0.0) {
            float hh = smoothstep(0.35, 0.65, h + (vnoise(r * 420.0) - 0.5) * 0.7);
            float strand = vnoise(vec3(r.x * 1400.0, r.y * 1400.0, r.z * 90.0));
            vec3 hc = lin(u_hair_rgb) * (0.45 + 0.9 * strand) * (0.8 + 0.4 * n1);
            alb = mix(alb, hc, hh);
            spec = mix(spec, 0.25, hh);
            shin = mix(shin, 12.0, hh);
            wrap = mix(wrap, 0.0, hh);
        }
    } else if (kind == 1) {
        vec3 d = normalize(r);
        float c = -d.z;
        float ang = atan(d.y, d.x);
        float iris = smoothstep(0.872, 0.882, c);
        float pupil = smoothstep(0.975, 0.98, c);
        vec3 ic = lin(u_iris_rgb) * (0.55 + 0.9 * vnoise(vec3(ang * 9.0, c * 60.0, 1.0)));
        ic *= 0.55 + 0.45 * smoothstep(0.872, 0.92, c);
        vec3 sclera = vec3(0.72, 0.68, 0.64) * (0.92 + 0.08 * vnoise(d * 40.0));
        alb = mix(mix(sclera, ic, iris), vec3(0.01), pupil);
        spec = 0.9;
        shin = 120.0;
    } else if (kind == 4) {
        // mouth interior: rest = (x / half-width, t top->bottom, opening height in metres)
        float t = r.y;
        vec3 inner = vec3(0.05, 0.008, 0.01) + vec3(0.12, 0.02, 0.02) * smoothstep(0.6, 1.0, t);
        float teeth_h = min(0.35, 0.0022 / max(r.z, 1e-4));
        float tooth = smoothstep(0.92, 0.75, abs(fract(r.x * 3.2 + 0.5) - 0.5) * 2.0);
        float upper = (1.0 - smoothstep(teeth_h * 0.8, teeth_h, t)) * smoothstep(0.95, 0.7, abs(r.x));
        alb = mix(inner, vec3(0.78, 0.75, 0.66) * (0.75 + 0.25 * tooth), upper * step(0.003, r.z));
        spec = 0.3 * upper;
        wrap = 0.5;
    } else if (kind == 2) {
        alb *= 0.8 + 0.4 * fbm(r * 260.0);
        alb *= 0.92 + 0.08 * sin(r.x * 2500.0) * sin(r.y * 2500.0);
        spec = 0.03;
    } else {
        shin = 90.0;
    }
    vec3 N = normalize(v_n);
    vec3 V = normalize(-v_pos);
    if (dot(N, V) < 0.0) N = -N;
    float dk = max(0.0, (dot(N, u_key_dir) + wrap) / (1.0 + wrap));
    float df = max(0.0, (dot(N, u_fill_dir) + wrap) / (1.0 + wrap));
    vec3 amb = mix(u_amb_bottom, u_amb_top, 0.5 - 0.5 * N.y);
    vec3 col = alb * (u_key_rgb * dk + u_fill_rgb * df + amb);
    vec3 Hk = normalize(u_key_dir + V);
    vec3 Hf = normalize(u_fill_dir + V);
    col += spec * 0.35 * (u_key_rgb * pow(max(dot(N, Hk), 0.0), shin) * step(0.0, dot(N, u_key_dir))
                         + u_fill_rgb * pow(max(dot(N, Hf), 0.0), shin) * step(0.0, dot(N, u_fill_dir)));
    col = 1.0 - exp(-1.4 * u_exposure * col);  // soft highlight roll-off
    f_color = vec4(pow(clamp(col, 0.0, 1.0), vec3(1.0 / 2.2)), 1.0);
}
"""

_BG_VS = """
#version 330
out vec2 v_uv;
void main() {
    vec2 p = vec2(gl_VertexID == 1 ? 3.0 : -1.0, gl_VertexID == 2 ? 3.0 : -1.0);
    v_uv = p * 0.5 + 0.5;
    gl_Position = vec4(p, 0.999, 1.0);
}
"""

_BG_FS = """
#version 330
in vec2 v_uv;
uniform int u_mode;
uniform vec3 u_c0;
uniform vec3 u_c1;
uniform vec2 u_dir;
uniform float u_namp;
uniform float u_nscale;
uniform vec3 u_noff;
uniform sampler2D u_photo;
uniform mat2 u_uv_mat;
uniform vec2 u_uv_off;
uniform float u_blur;
uniform vec3 u_tint;
out vec4 f_color;
""" + _NOISE + """
void main() {
    vec3 col;
    if (u_mode == 0) {
        float t = clamp(dot(v_uv - 0.5, u_dir) + 0.5, 0.0, 1.0);
        col = mix(u_c0, u_c1, t);
        col *= 1.0 + u_namp * 2.0 * (fbm(vec3(v_uv * u_nscale, 0.0) + u_noff) - 0.5);
    } else {
        vec2 uv = u_uv_mat * (v_uv - 0.5) + u_uv_off;
        col = texture(u_photo, uv, u_blur).rgb * u_tint;
    }
    f_color = vec4(clamp(col, 0.0, 1.0), 0.0);
}
"""


def projection_from_intrinsics(K: np.ndarray, width: int, height: int,
                               near: float = 0.02, far: float = 20.0) -> np.ndarray:
    """OpenGL clip matrix [4, 4] for OpenCV camera coordinates (x right, y down, z forward).

    NDC x = 2 (u + 0.5) / W - 1 and NDC y = 2 (v + 0.5) / H - 1 with (u, v) = OpenCV pixel
    coordinates, so the framebuffer's first row (glReadPixels order) is image row v = 0.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array([
        [2 * fx / width, K[0, 1] * 2 / width, 2 * (cx + 0.5) / width - 1, 0],
        [0, 2 * fy / height, 2 * (cy + 0.5) / height - 1, 0],
        [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)],
        [0, 0, 1, 0]])


def _mat(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(np.asarray(m, np.float32).T).tobytes()


class HeadRenderer:
    """Render meshes over a background into a size x size RGBA image (alpha = head mask)."""

    def __init__(self, size: int, photos: tuple[np.ndarray, ...] = (), samples: int = 4) -> None:
        """Create the EGL context, programs and framebuffers.

        Args:
            size: output side length in pixels.
            photos: background photos, RGB uint8 [H, W, 3].
            samples: MSAA samples (clamped to the driver's maximum; 0 disables MSAA).
        """
        import moderngl

        self._mgl = moderngl
        self.size = int(size)
        self.ctx = moderngl.create_standalone_context(backend="egl")
        # OpenCV camera (y down) rendered without a y flip mirrors the winding: outward CCW
        # triangles appear clockwise, so clockwise is front.
        self.ctx.front_face = "cw"
        samples = min(int(samples), self.ctx.max_samples)
        self.mesh_prog = self.ctx.program(vertex_shader=_MESH_VS, fragment_shader=_MESH_FS)
        self.bg_prog = self.ctx.program(vertex_shader=_BG_VS, fragment_shader=_BG_FS)
        self.bg_vao = self.ctx.vertex_array(self.bg_prog, [])
        s = self.size
        self.fbo_ms = self.ctx.framebuffer(
            color_attachments=[self.ctx.renderbuffer((s, s), 4, samples=samples)],
            depth_attachment=self.ctx.depth_renderbuffer((s, s), samples=samples))
        self.fbo = self.ctx.framebuffer(color_attachments=[self.ctx.renderbuffer((s, s), 4)])
        noise = np.random.default_rng(12345).integers(0, 256, (64, 64, 64), dtype=np.uint8)
        self.noise_tex = self.ctx.texture3d((64, 64, 64), 1, noise.tobytes())
        self.noise_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.noise_tex.repeat_x = self.noise_tex.repeat_y = self.noise_tex.repeat_z = True
        self.noise_tex.use(1)
        for prog in (self.mesh_prog, self.bg_prog):
            if "u_noise" in prog:
                prog["u_noise"].value = 1
        self.textures = []
        for img in photos:
            tex = self.ctx.texture((img.shape[1], img.shape[0]), 3, np.ascontiguousarray(img).tobytes())
            tex.build_mipmaps()
            tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
            self.textures.append(tex)
        self.vao = None
        self._vbo = None
        self._ibo = None

    def set_mesh(self, mesh: MeshPart, uniforms: dict[str, tuple[float, ...]]) -> None:
        """Upload a mesh (head frame) and its painted-detail uniforms."""
        if self.vao is not None:
            self.vao.release()
            self._vbo.release()
            self._ibo.release()
        data = np.concatenate([mesh.positions, mesh.normals, mesh.rest, mesh.colors, mesh.material,
                               mesh.kind[:, None]], axis=1).astype(np.float32)
        self._vbo = self.ctx.buffer(data.tobytes())
        self._ibo = self.ctx.buffer(mesh.faces.astype(np.int32).tobytes())
        self.vao = self.ctx.vertex_array(
            self.mesh_prog,
            [(self._vbo, "3f 3f 3f 3f 4f 1f", "in_pos", "in_normal", "in_rest", "in_color", "in_mat", "in_kind")],
            index_buffer=self._ibo, index_element_size=4)
        for name, value in uniforms.items():
            if name in self.mesh_prog:
                self.mesh_prog[name].value = tuple(float(v) for v in value)

    def render(self, K: np.ndarray, head_to_cam: np.ndarray, body_to_cam: np.ndarray,
               lighting: Lighting, background: Background | None) -> np.ndarray:
        """Render the current mesh.

        Args:
            K: [3, 3] intrinsics (pixels).
            head_to_cam: [4, 4] head-to-camera transform (metres, OpenCV camera frame).
            body_to_cam: [4, 4] torso-to-camera transform.
            lighting: lights in the camera frame.
            background: background, or None for black.

        Returns:
            [size, size, 4] uint8 RGBA image, row 0 at the top; alpha is the coverage of the
            rendered meshes (0 = background).
        """
        mgl = self._mgl
        p = self.mesh_prog
        p["u_proj"].write(_mat(projection_from_intrinsics(K, self.size, self.size)))
        p["u_head"].write(_mat(head_to_cam))
        p["u_body"].write(_mat(body_to_cam))
        for name in ("key_dir", "key_rgb", "fill_dir", "fill_rgb", "amb_top", "amb_bottom"):
            p["u_" + name].value = tuple(getattr(lighting, name))
        p["u_exposure"].value = lighting.exposure
        self.fbo_ms.use()
        self.ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        self.ctx.enable(mgl.DEPTH_TEST | mgl.CULL_FACE)
        self.vao.render(mgl.TRIANGLES)
        self.ctx.disable(mgl.CULL_FACE)
        if background is not None:  # drawn last at the far plane: early depth test skips the head
            self._draw_background(background)
        self.ctx.disable(mgl.DEPTH_TEST)
        self.ctx.copy_framebuffer(self.fbo, self.fbo_ms)
        raw = self.fbo.read(components=4, alignment=1)
        return np.frombuffer(raw, np.uint8).reshape(self.size, self.size, 4)

    def _draw_background(self, bg: Background) -> None:
        b = self.bg_prog
        use_photo = bg.mode == 1 and len(self.textures) > 0
        b["u_mode"].value = 1 if use_photo else 0
        for name, val in (("u_c0", bg.c0), ("u_c1", bg.c1), ("u_dir", bg.direction),
                          ("u_noff", bg.noise_offset), ("u_tint", bg.tint)):
            if name in b:
                b[name].value = tuple(val)
        for name, val in (("u_namp", bg.noise_amp), ("u_nscale", bg.noise_scale), ("u_blur", bg.blur)):
            if name in b:
                b[name].value = float(val)
        if use_photo:
            a = bg.uv_affine
            scale = float(np.hypot(a[0], a[2]))
            b["u_uv_mat"].value = (a[0], a[2], a[1], a[3])  # column-major
            b["u_uv_off"].value = (a[4] + scale / 2, a[5] + scale / 2)
            self.textures[bg.photo % len(self.textures)].use(0)
            b["u_photo"].value = 0
        self.bg_vao.render(self._mgl.TRIANGLES, vertices=3)

    def release(self) -> None:
        """Free all GL objects and the context."""
        self.ctx.release()


def egl_available() -> bool:
    """True if a headless EGL OpenGL 3.3 context can be created here."""
    try:
        import moderngl

        ctx = moderngl.create_standalone_context(backend="egl")
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False
    ctx.release()
    return True
