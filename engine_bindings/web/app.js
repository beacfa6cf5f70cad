// The view page: the GLB (three.js) and the GLSL triplane render side by side, driven by one set of
// controls (orbit camera, 52 morph sliders, the GLB's animation or a Live Link CSV). Static files
// only: once loaded, nothing more is fetched unless the user picks a CSV file.
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { loadTriplane, orbitCamera, TriplaneRenderer } from './triplane.js';

const params = new URLSearchParams(location.search);
const SIZE = Number(params.get('size')) || 384;
// ?planes=half uploads the planes as RGBA16F instead of RGBA32F (the shader is the same).
const HALF_PLANES = params.get('planes') === 'half';
// ?port=PREFIX runs a shader port's span and march passes instead of the reference (see triplane.js).
const PORT = params.get('port');
const BACKGROUND = [0.2, 0.2, 0.22];
const $ = (id) => document.getElementById(id);
const status = (text) => { $('status').textContent = text; };

// Head rotation (radians) as avatar.camera.head_rotation: R = Rz(roll) Ry(yaw) Rx(pitch), rows.
function headRotation(yaw, pitch, roll) {
  const m = new THREE.Matrix4().makeRotationZ(roll).multiply(new THREE.Matrix4().makeRotationY(yaw))
    .multiply(new THREE.Matrix4().makeRotationX(pitch));
  const e = m.elements;  // column-major
  return [[e[0], e[4], e[8]], [e[1], e[5], e[9]], [e[2], e[6], e[10]]];
}

// Live Link Face CSV -> { times, names, frames: [{ name: weight }], head: [[yaw, pitch, roll]] | null }.
function parseLiveLink(text, morphNames, rate = 30) {
  const rows = text.trim().split(/\r?\n/).map((line) => line.split(','));
  const header = rows[0].map((h) => h.trim());
  const lower = new Map(morphNames.map((n) => [n.toLowerCase(), n]));
  const columns = header.map((h) => lower.get(h.toLowerCase()) || null);
  const at = (name) => header.findIndex((h) => h.toLowerCase() === name);
  const [yawCol, pitchCol, rollCol] = ['headyaw', 'headpitch', 'headroll'].map(at);
  const frames = rows.slice(1).filter((r) => r.length === header.length).map((r) => {
    const weights = {};
    columns.forEach((name, i) => { if (name) weights[name] = Number(r[i]) || 0; });
    const head = yawCol >= 0 ? [Number(r[yawCol]) || 0, Number(r[pitchCol]) || 0, Number(r[rollCol]) || 0] : null;
    return { weights, head };
  });
  if (!frames.length) throw new Error('the CSV has no frames with the header\'s columns');
  return { rate, frames };
}

async function main() {
  const config = await (await fetch('avatar/view.json')).json();
  $('title').textContent = config.name;
  const glbCanvas = $('glb'), triCanvas = $('triplane');
  for (const c of [glbCanvas, triCanvas]) { c.width = c.height = SIZE; c.style.width = c.style.height = `${SIZE}px`; }

  // --- GLB view ---
  const renderer = new THREE.WebGLRenderer({ canvas: glbCanvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setSize(SIZE, SIZE, false);
  renderer.setClearColor(new THREE.Color().setRGB(...BACKGROUND, THREE.SRGBColorSpace));
  const scene = new THREE.Scene();
  const gltf = await new GLTFLoader().loadAsync(config.glb);
  scene.add(gltf.scene);
  const mpu = gltf.parser.json.extras.metres_per_unit;
  let head = null;
  gltf.scene.traverse((o) => {
    if (o.isMesh) {
      // Unlit: the baked textures hold what the stream shows, as the triplane render does.
      o.material = new THREE.MeshBasicMaterial({ map: o.material.map });
      if (o.name === 'head') head = o;
    }
  });
  if (!head) throw new Error('the GLB has no "head" mesh');
  const root = gltf.scene.children[0];
  const names = Object.keys(head.morphTargetDictionary).sort((a, b) => head.morphTargetDictionary[a] - head.morphTargetDictionary[b]);
  const camera = new THREE.PerspectiveCamera(30, 1, 0.01 * mpu, 100 * mpu);

  // --- triplane view ---
  status('loading the triplane export…');
  const assets = await loadTriplane(config.triplane);
  const g = head.geometry;
  const tri = new TriplaneRenderer(triCanvas, assets, {
    positions: g.attributes.position.array, uv: g.attributes.uv.array, index: g.index.array,
    deltas: g.morphAttributes.position.map((a) => a.array), metresPerUnit: mpu,
  });
  tri.background = BACKGROUND;
  await tri.init('shaders/', HALF_PLANES, PORT);

  // --- state shared by both views ---
  const state = { orbit: { yaw: 0, pitch: 0, roll: 0, radius: 2.7, fov: 18.837 }, weights: new Float32Array(names.length),
    dirty: true };
  const sliders = [];

  function applyOrbit(orbit) {
    state.orbit = { ...state.orbit, ...orbit };
    const cam = orbitCamera(state.orbit);
    tri.setCamera(cam);
    const [x, y, z] = cam.rotation.map((v) => new THREE.Vector3(...v));
    camera.position.set(...cam.origin.map((v) => v * mpu));
    camera.quaternion.setFromRotationMatrix(new THREE.Matrix4().makeBasis(x, y.negate(), z.negate()));
    camera.fov = 2 * Math.atan(0.5 / cam.focal) * 180 / Math.PI;
    camera.updateProjectionMatrix();
    for (const k of ['yaw', 'pitch', 'radius', 'fov']) $(k).value = +state.orbit[k].toFixed(3);
    state.dirty = true;
  }

  function applyWeights(weights) {
    names.forEach((n, k) => {
      if (n in weights) state.weights[k] = weights[n];
      head.morphTargetInfluences[k] = state.weights[k];
      sliders[k].value = state.weights[k];
    });
    tri.setWeights(state.weights);
    state.dirty = true;
  }

  function applyHead(rotation) {  // rows of a 3x3 head rotation, or null
    tri.headRotation = rotation;
    if (rotation) {
      const r = rotation;
      root.quaternion.setFromRotationMatrix(new THREE.Matrix4().set(r[0][0], r[0][1], r[0][2], 0, r[1][0], r[1][1],
        r[1][2], 0, r[2][0], r[2][1], r[2][2], 0, 0, 0, 0, 1));
    } else root.quaternion.identity();
    state.dirty = true;
  }

  function renderNow() {
    renderer.render(scene, camera);
    tri.render();
    state.dirty = false;
  }

  // Orbit controls on both canvases move the one camera; the triplane follows from the orbit.
  let syncing = false;
  for (const canvas of [glbCanvas, triCanvas]) {
    const controls = new OrbitControls(camera, canvas);
    controls.addEventListener('change', () => {
      if (syncing) return;
      const p = camera.position.clone().divideScalar(mpu);
      const radius = p.length();
      syncing = true;
      applyOrbit({ yaw: Math.atan2(p.x, p.z) * 180 / Math.PI, pitch: Math.asin(p.y / radius) * 180 / Math.PI, roll: 0, radius });
      syncing = false;
    });
  }
  for (const k of ['yaw', 'pitch', 'radius', 'fov']) $(k).addEventListener('change', () => applyOrbit({ [k]: Number($(k).value) }));

  for (const [k, name] of names.entries()) {
    const label = document.createElement('label');
    label.textContent = name;
    const input = Object.assign(document.createElement('input'), { type: 'range', min: 0, max: 1, step: 0.01, value: 0 });
    input.dataset.morph = name;
    input.addEventListener('input', () => applyWeights({ [name]: Number(input.value) }));
    label.append(input);
    $('sliders').append(label);
    sliders[k] = input;
  }

  // --- playback: the GLB's animation (AnimationMixer) or a Live Link CSV ---
  let playing = null;
  let playbackTicks = 0;  // animation frames applied, for scripted use
  let last = 0;  // time of the previous animation frame, ms
  const mixer = new THREE.AnimationMixer(gltf.scene);
  function stop() { playing = null; mixer.stopAllAction(); }
  if (gltf.animations.length) {
    $('play-glb').disabled = false;
    $('play-glb').addEventListener('click', () => {
      stop();
      mixer.clipAction(gltf.animations[0]).play();
      playing = { kind: 'glb' };
      last = performance.now();
    });
  }
  function playCsv(text) {
    stop();
    playing = { kind: 'csv', clip: parseLiveLink(text, names), start: performance.now() };
  }
  if (config.livelink) {
    $('play-csv').disabled = false;
    const csvText = await (await fetch(config.livelink)).text();  // fetched now: playback needs no server
    $('play-csv').addEventListener('click', () => playCsv(csvText));
  }
  $('csv-file').addEventListener('change', async () => {
    const file = $('csv-file').files[0];
    if (!file) return;
    try { playCsv(await file.text()); } catch (e) { status(`${file.name}: ${e.message}`); }
  });
  $('stop').addEventListener('click', stop);
  $('reset').addEventListener('click', () => { stop(); applyWeights(Object.fromEntries(names.map((n) => [n, 0]))); applyHead(null); });

  function tick() {
    if (playing) playbackTicks += 1;
    if (playing && playing.kind === 'glb') {
      const now = performance.now();
      mixer.update((now - last) / 1000);
      last = now;
      applyWeights(Object.fromEntries(names.map((n, k) => [n, head.morphTargetInfluences[k]])));
      const m = new THREE.Matrix4().makeRotationFromQuaternion(root.quaternion).elements;
      applyHead([[m[0], m[4], m[8]], [m[1], m[5], m[9]], [m[2], m[6], m[10]]]);
    } else if (playing && playing.kind === 'csv') {
      const { rate, frames } = playing.clip;
      const frame = frames[Math.floor((performance.now() - playing.start) / 1000 * rate) % frames.length];
      applyWeights(frame.weights);
      applyHead(frame.head ? headRotation(...frame.head) : null);
    }
    if (state.dirty) renderNow();
    requestAnimationFrame(tick);
  }

  applyOrbit(state.orbit);
  applyWeights({});
  renderNow();
  status(HALF_PLANES ? 'ready (planes in half precision)' : 'ready');
  requestAnimationFrame(tick);

  // For scripted use (tests, benchmarks): the same actions the controls take.
  return {
    names, background: BACKGROUND, size: SIZE,
    setOrbit: (o) => { applyOrbit(o); return renderNow(); },
    setWeights: (w) => { applyWeights(w); return renderNow(); },
    renderNow,
    playbackTicks: () => playbackTicks,
    // Frames per second of the triplane render alone (span, march; the pose is unchanged). Each frame
    // waits for its fence (gl.finish does not wait in Chromium), polled from the event loop.
    triplaneFps: async (frames) => {
      const gl = tri.gl;
      const frame = async () => {
        tri.render();
        const sync = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
        gl.flush();
        while (gl.getSyncParameter(sync, gl.SYNC_STATUS) !== gl.SIGNALED) await new Promise((r) => setTimeout(r, 1));
        gl.deleteSync(sync);
      };
      await frame();
      const started = performance.now();
      for (let i = 0; i < frames; ++i) await frame();
      return frames / ((performance.now() - started) / 1000);
    },
  };
}

window.avatarView = main().catch((e) => { status(`error: ${e.message}`); throw e; });
