// Host side of the reference triplane raymarcher (shaders/triplane.glsl, shaders/front_plane.glsl) in
// plain WebGL2: what an engine integration does, step by step. It reads the triplane export as written
// (triplane.json, the EXR planes through three's EXRLoader, decoder.bin, occupancy.bin) and the GLB's
// head mesh for the expression-dependent front plane.
import { EXRLoader } from 'three/addons/loaders/EXRLoader.js';
import { DataUtils, FloatType, RGBAFormat } from 'three';

const MAX_GROUPS = 8;

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

// Everything the shader reads, from the export directory `base` (ending in "/").
export async function loadTriplane(base) {
  const manifest = await (await fetchOk(base + 'triplane.json')).json();
  const { planes: nPlanes, channels, height, width } = manifest.shape;
  const groups = channels / 4;
  const planes = new Float32Array(nPlanes * groups * height * width * 4);
  const exr = new EXRLoader().setDataType(FloatType);
  exr.outputFormat = RGBAFormat;
  await Promise.all(manifest.images.map(async (image) => {
    const buffer = await (await fetchOk(base + image.path.replace(/^triplane\//, ''))).arrayBuffer();
    const parsed = exr.parse(buffer);
    const layer = image.plane * groups + image.channels.R / 4;
    const rowLength = width * 4;
    for (let row = 0; row < height; ++row) {  // EXRLoader returns rows bottom-up: flip back to plane rows
      const src = (height - 1 - row) * rowLength;
      planes.set(parsed.data.subarray(src, src + rowLength), (layer * height + row) * rowLength);
    }
  }));
  const decoderBytes = await (await fetchOk(base + 'decoder.bin')).arrayBuffer();
  const tensors = {};
  for (const t of manifest.decoder.tensors) {
    tensors[t.name] = { shape: t.shape, data: new Float32Array(decoderBytes, t.offset, t.bytes / 4) };
  }
  let occupancy = null;
  if (manifest.occupancy) {
    const bytes = new Uint8Array(await (await fetchOk(base + 'occupancy.bin')).arrayBuffer());
    occupancy = {};
    for (const grid of manifest.occupancy.grids) {
      const n = grid.resolution ** 3;
      const cells = new Uint8Array(n);
      for (let i = 0; i < n; ++i) cells[i] = (bytes[grid.offset + (i >> 3)] >> (i & 7)) & 1 ? 255 : 0;
      occupancy[grid.name] = { resolution: grid.resolution, cells };
    }
  }
  return { manifest, planes, groups, width, height, tensors, occupancy };
}

// The decoder cut to what rendering reads, as avatar.decoder.RenderField: hidden units feeding the
// given outputs, the channel groups those units read, fc0 weights / 3 (mean of three planes).
function field(tensors, outputs, groupsPerPlane) {
  const w1 = tensors['net.0.weight'], b1 = tensors['net.0.bias'].data;
  const w2 = tensors['net.2.weight'], b2 = tensors['net.2.bias'].data;
  const [hidden, channels] = w1.shape;
  const units = [];
  for (let j = 0; j < hidden; ++j) if (outputs.some((o) => w2.data[o * hidden + j] !== 0)) units.push(j);
  const used = new Set();
  for (const j of units) for (let c = 0; c < channels; ++c) if (w1.data[j * channels + c] !== 0) used.add(c >> 2);
  const groups = [...used].sort((a, b) => a - b);
  if (!groups.length) groups.push(0);  // a field that reads nothing still samples one group
  if (groups.length > MAX_GROUPS || groups.some((g) => g >= groupsPerPlane)) throw new Error('decoder reads unknown channels');
  // Row per unit (triplane.glsl): (b1, w2 column), (mask of the groups it reads), fc0 weights / 3 per group.
  const rowTexels = 2 + groups.length;
  const data = new Float32Array(Math.max(units.length, 1) * rowTexels * 4);
  units.forEach((j, row) => {
    const at = row * rowTexels * 4;
    data[at] = b1[j];
    outputs.forEach((o, k) => { data[at + 1 + k] = w2.data[o * hidden + j]; });
    groups.forEach((g, n) => {
      for (let c = 0; c < 4; ++c) {
        const w = w1.data[j * channels + 4 * g + c];
        data[at + 4 * (2 + n) + c] = w / 3;
        if (w !== 0) data[at + 4] |= 1 << n;
      }
    });
  });
  return { units: units.length, groups, rowTexels, data, bias: outputs.map((o) => b2[o]) };
}

function channelsRead(tensors) {
  const w1 = tensors['net.0.weight'], w2 = tensors['net.2.weight'];
  const [hidden, channels] = w1.shape;
  const read = new Set();
  for (let j = 0; j < hidden; ++j) {
    if (![0, 1, 2, 3].some((o) => w2.data[o * hidden + j] !== 0)) continue;
    for (let c = 0; c < channels; ++c) if (w1.data[j * channels + c] !== 0) read.add(c);
  }
  return read;
}

// EG3D orbit -> 25-vector parts, as avatar.camera.orbit_to_cam2world and intrinsics.
export function orbitCamera({ yaw = 0, pitch = 0, roll = 0, radius = 2.7, fov = 18.837 }) {
  const rad = Math.PI / 180, y = yaw * rad, p = pitch * rad, r = roll * rad;
  const origin = [radius * Math.cos(p) * Math.sin(y), radius * Math.sin(p), radius * Math.cos(p) * Math.cos(y)];
  const norm = (v) => { const l = Math.hypot(...v); return v.map((x) => x / l); };
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const forward = norm(origin.map((x) => -x));
  const right = norm(cross(forward, [0, 1, 0]));
  const down = cross(forward, right);
  const c = Math.cos(r), s = Math.sin(r);
  // columns of cam2world: right, down, forward, each turned by the roll about forward
  const x = right.map((v, i) => c * v + s * down[i]);
  const yAxis = right.map((v, i) => -s * v + c * down[i]);
  const focal = 1 / (Math.SQRT2 * Math.tan(fov * rad / 2));
  return { rotation: [x, yAxis, forward], origin, focal };
}

export class TriplaneRenderer {
  // assets: loadTriplane(); head: { positions (V*3, metres), uv (V*2, glTF v down), index, deltas
  // (52 arrays of V*3 metres), metresPerUnit }: the GLB head mesh.
  constructor(canvas, assets, head) {
    const gl = canvas.getContext('webgl2', { antialias: false, preserveDrawingBuffer: true, alpha: false });
    if (!gl) throw new Error('WebGL2 is not available');
    if (!gl.getExtension('EXT_color_buffer_float')) throw new Error('EXT_color_buffer_float is not available (float render targets)');
    this.gl = gl;
    this.canvas = canvas;
    this.assets = assets;
    this.head = head;
    this.background = [0, 0, 0];
    this.weights = new Float32Array(head.deltas.length);
    this.cameraParams = orbitCamera({});
    this.headRotation = null;  // 3x3 row-major head rotation (an animation's root node), or null
  }

  // halfPlanes: store the planes as RGBA16F (half the memory; see benchmarks/web_view.py for what it
  // costs in PSNR) instead of RGBA32F. The composed front plane stays float32.
  // port: URL prefix of a port's span and march fragment shaders translated to GLSL ES
  // (`${port}span.glsl`, `${port}march.glsl`, complete but for the #version line, reading the uniforms
  // named here), run instead of the reference passes: how tests/test_web_view.py runs the HLSL ports.
  async init(shaderBase, halfPlanes = false, port = null) {
    const gl = this.gl, a = this.assets, m = a.manifest;
    const text = async (url) => (await fetchOk(url)).text();
    const [triplaneSrc, frontSrc] = await Promise.all([text(shaderBase + 'triplane.glsl'), text(shaderBase + 'front_plane.glsl')]);
    const portSrc = port ? await Promise.all([text(port + 'span.glsl'), text(port + 'march.glsl')]) : null;
    const occ = m.occupancy;
    if (!occ) throw new Error('the triplane export has no occupancy grid (export it with the avatar\'s head model known)');
    const march = occ.march;
    this.fineRes = a.occupancy.fine.resolution;
    this.coarseRes = a.occupancy.coarse.resolution;
    const f = (x) => (Number.isInteger(x) ? x.toFixed(1) : String(x));
    const defines = [`#define GROUPS ${a.groups}`, `#define MAX_GROUPS ${MAX_GROUPS}`,
      `#define FINE_RES ${this.fineRes}`, `#define COARSE_RES ${this.coarseRes}`,
      `#define SAMPLES_PER_ROUND ${march.samples_per_round}`, `#define TRANSMITTANCE_EPS ${f(march.transmittance_eps)}`,
      `#define WEIGHT_EPS ${f(march.weight_eps)}`, `#define REFINE_OPTICAL ${f(march.refine_optical)}`,
      `#define REFINE_BISECTIONS ${march.refine_bisections}`, `#define DENSITY_SHIFT ${f(m.decoder.density_shift)}`,
      `#define SIGMOID_WIDEN ${f(m.decoder.sigmoid_widen)}`].join('\n');
    const fullscreen = '#define VERTEX\n#define COPY\n' + frontSrc;
    this.spanProgram = this.program(fullscreen, portSrc ? portSrc[0] : `${defines}\n#define PASS_SPAN\n${triplaneSrc}`);
    this.marchProgram = this.program(fullscreen, portSrc ? portSrc[1] : `${defines}\n#define PASS_MARCH\n${triplaneSrc}`);
    this.copyProgram = this.program(fullscreen, `${defines}\n#define FRAGMENT\n#define COPY\n${frontSrc}`);
    this.meshProgram = this.program(`${defines}\n#define VERTEX\n#define MESH\n${frontSrc}`,
      `${defines}\n#define FRAGMENT\n#define MESH\n${frontSrc}`);

    // Planes: one RGBA32F array layer per (plane, group).
    if (halfPlanes) {
      const half = new Uint16Array(a.planes.length);
      for (let i = 0; i < half.length; ++i) half[i] = DataUtils.toHalfFloat(a.planes[i]);
      this.planeTex = this.arrayTexture(a.width, a.height, 4 * a.groups, half, gl.RGBA16F, gl.HALF_FLOAT);
    } else {
      this.planeTex = this.arrayTexture(a.width, a.height, 4 * a.groups, a.planes, gl.RGBA32F, gl.FLOAT);
    }
    this.frontTex = this.arrayTexture(a.width, a.height, a.groups, null, gl.RGBA32F, gl.FLOAT);
    this.frontDepth = gl.createRenderbuffer();
    gl.bindRenderbuffer(gl.RENDERBUFFER, this.frontDepth);
    gl.renderbufferStorage(gl.RENDERBUFFER, gl.DEPTH_COMPONENT32F, a.width, a.height);
    this.frontFbo = gl.createFramebuffer();

    // Decoder fields.
    this.densityField = field(a.tensors, [0], a.groups);
    this.colourField = field(a.tensors, [1, 2, 3], a.groups);
    for (const fd of [this.densityField, this.colourField]) {
      fd.texture = this.texture2d(fd.rowTexels, Math.max(fd.units, 1), gl.RGBA32F, gl.RGBA, gl.FLOAT, fd.data);
    }
    this.raster = this.rasterUniforms(a.tensors);

    // Occupancy: the exported grids; each expression adds the cells of the moving part of the posed mesh.
    this.baseGrids = a.occupancy;
    this.fineTex = this.texture3d(this.fineRes);
    this.coarseTex = this.texture3d(this.coarseRes);

    // The head mesh: posed on the CPU, uv flipped back to v up.
    const h = this.head;
    const vertexCount = h.positions.length / 3;
    this.posed = new Float32Array(h.positions.length);
    const uv = new Float32Array(h.uv.length);
    for (let i = 0; i < vertexCount; ++i) { uv[2 * i] = h.uv[2 * i]; uv[2 * i + 1] = 1 - h.uv[2 * i + 1]; }
    this.movingFaces = this.findMovingFaces();
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    this.positionBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.positionBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, this.posed.byteLength, gl.DYNAMIC_DRAW);
    const posLoc = gl.getAttribLocation(this.meshProgram, 'aPosition');
    gl.enableVertexAttribArray(posLoc);
    gl.vertexAttribPointer(posLoc, 3, gl.FLOAT, false, 0, 0);
    const uvBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, uvBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, uv, gl.STATIC_DRAW);
    const uvLoc = gl.getAttribLocation(this.meshProgram, 'aUv');
    gl.enableVertexAttribArray(uvLoc);
    gl.vertexAttribPointer(uvLoc, 2, gl.FLOAT, false, 0, 0);
    const indexBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, indexBuffer);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, new Uint32Array(h.index), gl.STATIC_DRAW);
    gl.bindVertexArray(null);
    this.emptyVao = gl.createVertexArray();
    this.spanTex = null;
    this.marchFbo = gl.createFramebuffer();
    this.poseDirty = true;
  }

  program(vertexSrc, fragmentSrc) {
    const gl = this.gl;
    const compile = (type, src) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, '#version 300 es\n' + src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error('shader: ' + gl.getShaderInfoLog(s));
      return s;
    };
    const p = gl.createProgram();
    gl.attachShader(p, compile(gl.VERTEX_SHADER, vertexSrc));
    gl.attachShader(p, compile(gl.FRAGMENT_SHADER, fragmentSrc));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error('program: ' + gl.getProgramInfoLog(p));
    p.uniforms = {};
    const count = gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS);
    for (let i = 0; i < count; ++i) {
      const name = gl.getActiveUniform(p, i).name.replace(/\[0\]$/, '');
      p.uniforms[name] = gl.getUniformLocation(p, name);
    }
    return p;
  }

  nearestParams(target) {
    const gl = this.gl;
    gl.texParameteri(target, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(target, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texParameteri(target, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(target, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  }

  arrayTexture(width, height, layers, data, internal, type) {
    const gl = this.gl, t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D_ARRAY, t);
    gl.texStorage3D(gl.TEXTURE_2D_ARRAY, 1, internal, width, height, layers);
    if (data) gl.texSubImage3D(gl.TEXTURE_2D_ARRAY, 0, 0, 0, 0, width, height, layers, gl.RGBA, type, data);
    this.nearestParams(gl.TEXTURE_2D_ARRAY);
    return t;
  }

  texture2d(width, height, internal, format, type, data) {
    const gl = this.gl, t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, t);
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, width, height, 0, format, type, data);
    this.nearestParams(gl.TEXTURE_2D);
    return t;
  }

  texture3d(res) {
    const gl = this.gl, t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_3D, t);
    gl.texStorage3D(gl.TEXTURE_3D, 1, gl.R8, res, res, res);
    this.nearestParams(gl.TEXTURE_3D);
    return t;
  }

  // raster.* buffers as front_plane.glsl reads them, restricted like the renderer's composer to the
  // channels the decoder reads.
  rasterUniforms(tensors) {
    const channels = tensors['net.0.weight'].shape[1];
    const mask = tensors['raster.channel_mask'].data, weight = tensors['raster.depth_weight'].data;
    const test = tensors['raster.depth_test'] ? tensors['raster.depth_test'].data[0] > 0 : false;
    const read = channelsRead(tensors);
    let depthChannel = -1, best = 0;
    for (let c = 0; c < channels; ++c) {
      if (!read.has(c) || !(mask[c] > 0)) continue;
      if (Math.abs(weight[c]) > best) { best = Math.abs(weight[c]); depthChannel = c; }
    }
    return { mask, weight, depthChannel: test ? depthChannel : -1,
      depthWeight: depthChannel >= 0 ? weight[depthChannel] : 0 };
  }

  // Triangles a morph target moves (any corner with a non-zero delta): the per-frame part of the
  // occupancy, as the renderer's moving faces (the gaze-only ones are in the exported grids).
  findMovingFaces() {
    const h = this.head, n = h.positions.length / 3;
    const moves = new Uint8Array(n);
    for (const d of h.deltas) for (let i = 0; i < n; ++i) if (d[3 * i] || d[3 * i + 1] || d[3 * i + 2]) moves[i] = 1;
    const faces = [];
    for (let f = 0; f < h.index.length; f += 3) {
      if (moves[h.index[f]] || moves[h.index[f + 1]] || moves[h.index[f + 2]]) faces.push(f);
    }
    return faces;
  }

  setWeights(weights) {
    let changed = false;
    for (let k = 0; k < this.weights.length; ++k) {
      const w = Math.fround(weights[k] || 0);
      if (w !== this.weights[k]) { this.weights[k] = w; changed = true; }
    }
    if (changed) this.poseDirty = true;
  }

  // Posed vertices (box units), the composed front plane and this expression's occupancy.
  pose() {
    const gl = this.gl, h = this.head;
    const scale = 1 / h.metresPerUnit;
    const p = this.posed;
    for (let i = 0; i < p.length; ++i) p[i] = h.positions[i];
    this.weights.forEach((w, k) => {
      if (!w) return;
      const d = h.deltas[k];
      for (let i = 0; i < p.length; ++i) p[i] += w * d[i];
    });
    for (let i = 0; i < p.length; ++i) p[i] *= scale;

    gl.bindBuffer(gl.ARRAY_BUFFER, this.positionBuffer);
    gl.bufferSubData(gl.ARRAY_BUFFER, 0, p);
    this.composeFront();

    for (const [name, tex] of [['fine', this.fineTex], ['coarse', this.coarseTex]]) {
      const base = this.baseGrids[name];
      const cells = base.cells.slice();
      const r = base.resolution;
      const mark = (x, y, z) => {
        const ijk = [x, y, z].map((v) => Math.min(Math.max(Math.trunc((v + 0.5) * r), 0), r - 1));
        for (let i = Math.max(ijk[0] - 1, 0); i <= Math.min(ijk[0] + 1, r - 1); ++i)
          for (let j = Math.max(ijk[1] - 1, 0); j <= Math.min(ijk[1] + 1, r - 1); ++j)
            for (let k = Math.max(ijk[2] - 1, 0); k <= Math.min(ijk[2] + 1, r - 1); ++k) cells[(i * r + j) * r + k] = 255;
      };
      for (const f of this.movingFaces) {
        const c = [0, 0, 0];
        for (let q = 0; q < 3; ++q) {
          const v = 3 * h.index[f + q];
          mark(p[v], p[v + 1], p[v + 2]);
          for (let e = 0; e < 3; ++e) c[e] += p[v + e];
        }
        mark(c[0] / 3, c[1] / 3, c[2] / 3);
      }
      gl.bindTexture(gl.TEXTURE_3D, tex);
      gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, 0, r, r, r, gl.RED, gl.UNSIGNED_BYTE, cells);
    }
    this.poseDirty = false;
  }

  composeFront() {
    const gl = this.gl, a = this.assets, r = this.raster;
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.frontFbo);
    gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.DEPTH_ATTACHMENT, gl.RENDERBUFFER, this.frontDepth);
    gl.viewport(0, 0, a.width, a.height);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D_ARRAY, this.planeTex);
    for (let g = 0; g < a.groups; ++g) {
      gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, this.frontTex, 0, g);
      gl.disable(gl.DEPTH_TEST);
      gl.useProgram(this.copyProgram);
      gl.uniform1i(this.copyProgram.uniforms.uPlanes, 0);
      gl.uniform1i(this.copyProgram.uniforms.uGroup, g);
      gl.bindVertexArray(this.emptyVao);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
      gl.clear(gl.DEPTH_BUFFER_BIT);
      gl.enable(gl.DEPTH_TEST);
      gl.depthFunc(gl.LESS);
      const u = this.meshProgram.uniforms;
      gl.useProgram(this.meshProgram);
      gl.uniform1i(u.uPlanes, 0);
      gl.uniform2i(u.uPlaneSize, a.width, a.height);
      gl.uniform1i(u.uGroup, g);
      gl.uniform4fv(u.uMask, r.mask.subarray(4 * g, 4 * g + 4));
      gl.uniform4fv(u.uDepthWeight, r.weight.subarray(4 * g, 4 * g + 4));
      gl.uniform1i(u.uDepthChannel, r.depthChannel);
      gl.uniform1f(u.uDepthChannelWeight, r.depthWeight);
      gl.bindVertexArray(this.vao);
      gl.drawElements(gl.TRIANGLES, this.head.index.length, gl.UNSIGNED_INT, 0);
    }
    gl.disable(gl.DEPTH_TEST);
    gl.bindVertexArray(null);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
  }

  setCamera(params) { this.cameraParams = params; }

  setUniforms(p, width, height) {
    const gl = this.gl, u = p.uniforms, a = this.assets, cam = this.cameraParams;
    let [x, y, z] = cam.rotation;  // columns of cam2world
    let origin = cam.origin;
    if (this.headRotation) {  // avatar.camera.apply_head_pose: the camera turns by the inverse head rotation
      const R = this.headRotation;
      const inv = (v) => [0, 1, 2].map((i) => R[0][i] * v[0] + R[1][i] * v[1] + R[2][i] * v[2]);
      [x, y, z, origin] = [x, y, z, origin].map(inv);
    }
    gl.uniformMatrix3fv(u.uCamRot, false, new Float32Array([...x, ...y, ...z]));
    gl.uniform3fv(u.uCamPos, new Float32Array(origin));
    gl.uniform4f(u.uIntrinsics, cam.focal, cam.focal, 0.5, 0.5);
    const radius = Math.hypot(...origin);
    gl.uniform2f(u.uNearFar, Math.max(radius + (2.25 - 2.7), 0.01), radius + (3.3 - 2.7));
    gl.uniform2i(u.uImageSize, width, height);
    gl.uniform2i(u.uPlaneSize, a.width, a.height);
    const axes = { x: 0, y: 1, z: 2 };
    const names = a.manifest.plane_order.slice(1);
    gl.uniform2iv(u.uAxes, new Int32Array(names.flatMap((n) => [axes[n[0]], axes[n[1]]])));
    const units = [[gl.TEXTURE0, gl.TEXTURE_2D_ARRAY, this.planeTex, 'uPlanes'],
      [gl.TEXTURE1, gl.TEXTURE_2D_ARRAY, this.frontTex, 'uFront'], [gl.TEXTURE2, gl.TEXTURE_3D, this.fineTex, 'uFine'],
      [gl.TEXTURE3, gl.TEXTURE_3D, this.coarseTex, 'uCoarse'],
      [gl.TEXTURE4, gl.TEXTURE_2D, this.densityField.texture, 'uDensityField'],
      [gl.TEXTURE5, gl.TEXTURE_2D, this.colourField.texture, 'uColourField'],
      [gl.TEXTURE6, gl.TEXTURE_2D, this.spanTex, 'uSpans']];
    units.forEach(([unit, target, tex, name], i) => {  // only the samplers this pass reads (not its target)
      if (!u[name]) return;
      gl.activeTexture(unit);
      gl.bindTexture(target, tex);
      gl.uniform1i(u[name], i);
    });
    for (const [prefix, fd] of [['uDensity', this.densityField], ['uColour', this.colourField]]) {
      const list = new Int32Array(MAX_GROUPS);
      list.set(fd.groups);
      gl.uniform1iv(u[prefix + 'Groups'], list);
      gl.uniform1i(u[prefix + 'GroupCount'], fd.groups.length);
      gl.uniform1i(u[prefix + 'Hidden'], fd.units);
    }
    gl.uniform1f(u.uDensityBias, this.densityField.bias[0]);
    gl.uniform3fv(u.uColourBias, new Float32Array(this.colourField.bias));
    if (u.uBackground) gl.uniform3fv(u.uBackground, new Float32Array(this.background));
  }

  // One frame into the canvas at its drawing-buffer size.
  render() {
    const gl = this.gl;
    if (this.poseDirty) this.pose();
    const width = this.canvas.width, height = this.canvas.height;
    const sw = (width + 1) >> 1, sh = (height + 1) >> 1;
    if (!this.spanTex || this.spanSize !== `${sw}x${sh}`) {
      this.spanTex = this.texture2d(sw, sh, gl.RG32F, gl.RG, gl.FLOAT, null);
      this.spanSize = `${sw}x${sh}`;
    }
    gl.bindVertexArray(this.emptyVao);
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.marchFbo);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.spanTex, 0);
    gl.viewport(0, 0, sw, sh);
    gl.useProgram(this.spanProgram);
    this.setUniforms(this.spanProgram, width, height);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, width, height);
    gl.useProgram(this.marchProgram);
    this.setUniforms(this.marchProgram, width, height);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.bindVertexArray(null);
  }
}
