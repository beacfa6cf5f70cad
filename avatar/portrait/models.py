"""MediaPipe's .tflite models: the on-disk cache, its bootstrap, and one LiteRT interpreter per model.

The models ship inside the ``mediapipe`` wheel on PyPI (Apache-2.0). ``mediapipe`` itself cannot be a
dependency (it pins protobuf<5), so ``python -m avatar.portrait.fetch_models`` (run by ``make models``)
downloads the wheel without its dependencies, extracts the five files below, checks their sha256 and
installs them atomically into the cache:

    $AVATARFORGE_MODEL_DIR                      when set, else
    ~/.cache/avatarforge/models/mediapipe-0.10.21

At run time a missing or altered file raises PerceptionUnavailable (a server condition, not bad input).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PerceptionUnavailable

MEDIAPIPE_VERSION = "0.10.21"
MODEL_DIR_ENV = "AVATARFORGE_MODEL_DIR"
# Any wheel of this version holds byte-identical models; pinning one platform makes `pip download` deterministic.
WHEEL_PLATFORM = ("--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "--only-binary=:all:")
WHEEL_MODULES = "mediapipe/modules/"


@dataclass(frozen=True)
class ModelFile:
    name: str        # file name in the cache
    wheel_path: str  # path under mediapipe/modules/ in the wheel
    sha256: str


MODELS = {m.name: m for m in (
    ModelFile("face_detection_short_range.tflite", "face_detection/face_detection_short_range.tflite",
              "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    ModelFile("face_detection_full_range_sparse.tflite", "face_detection/face_detection_full_range_sparse.tflite",
              "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
    ModelFile("face_landmark.tflite", "face_landmark/face_landmark.tflite",
              "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
    ModelFile("iris_landmark.tflite", "iris_landmark/iris_landmark.tflite",
              "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
    ModelFile("selfie_segmentation.tflite", "selfie_segmentation/selfie_segmentation.tflite",
              "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
)}

NOTICE = f"""These model files are unmodified copies from the MediaPipe {MEDIAPIPE_VERSION} wheel
(https://pypi.org/project/mediapipe/{MEDIAPIPE_VERSION}/, https://github.com/google-ai-edge/mediapipe),
path mediapipe/modules/: {", ".join(m.wheel_path for m in MODELS.values())}.

Copyright The MediaPipe Authors.
Licensed under the Apache License, Version 2.0 (the "License"); you may not use these files except in
compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License is
distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and limitations under the License.
The full licence text shipped with the wheel is in LICENSE next to this file.
"""


def model_dir() -> Path:
    """The cache directory the models are read from (and `fetch` installs into)."""
    override = os.environ.get(MODEL_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "avatarforge" / "models" / f"mediapipe-{MEDIAPIPE_VERSION}"


def missing_models(directory: Path | None = None) -> list[str]:
    """Names of model files absent from the cache (for status reports; hashes are checked when a model loads)."""
    directory = model_dir() if directory is None else directory
    return [name for name in MODELS if not (directory / name).is_file()]


def model_path(name: str) -> Path:
    """Path of a cached model whose sha256 matches the pinned one; PerceptionUnavailable otherwise."""
    directory = model_dir()
    path = directory / name
    if not path.is_file():
        raise PerceptionUnavailable(
            f"the face perception model {name} is not installed in {directory}; run `make models` "
            f"(or `python -m avatar.portrait.fetch_models fetch`), or point {MODEL_DIR_ENV} at a directory holding it")
    if _sha256(path) != MODELS[name].sha256:
        raise PerceptionUnavailable(
            f"the face perception model {path} does not match its pinned sha256 (damaged or a different "
            f"version); delete it and run `make models`")
    return path


class Model:
    """One LiteRT interpreter, created on first use. Calls are serialised by a lock: an interpreter's
    tensors are shared state, and one core per model keeps concurrent requests from oversubscribing."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._interpreter: Any = None   # ai_edge_litert's Interpreter (untyped)
        self._loaded_from: Path | None = None

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run on one (1, H, W, 3) float32 input; the outputs in the model's declared order, copied."""
        with self._lock:
            interpreter = self._load()
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                                   np.ascontiguousarray(tensor, dtype=np.float32))
            interpreter.invoke()
            return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]

    def _load(self) -> Any:
        # The cache can be redirected (AVATARFORGE_MODEL_DIR) between calls, e.g. by tests: follow it.
        path = model_dir() / self.name
        if self._interpreter is None or self._loaded_from != path:
            from ai_edge_litert.interpreter import Interpreter  # heavy import, only when perception runs
            interpreter = Interpreter(model_path=str(model_path(self.name)), num_threads=1)
            interpreter.allocate_tensors()
            self._interpreter, self._loaded_from = interpreter, path
        return self._interpreter


_models: dict[str, Model] = {}
_models_lock = threading.Lock()


def model(name: str) -> Model:
    """The process-wide runner of one cached model."""
    with _models_lock:
        if name not in _models:
            if name not in MODELS:
                raise KeyError(f"unknown model {name!r}")
            _models[name] = Model(name)
        return _models[name]


def fetch(directory: Path | None = None, wheel: Path | None = None) -> Path:
    """Install the models into `directory` (default: model_dir()); a no-op when they are already there.

    `wheel` is a local mediapipe wheel to extract from; without it pip downloads one.
    """
    directory = model_dir() if directory is None else Path(directory)
    if _complete(directory):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=directory.parent) as tmp_name:
        tmp = Path(tmp_name)
        if wheel is None:
            wheel = _download_wheel(tmp / "wheel")
        staging = tmp / "models"
        staging.mkdir()
        _extract(Path(wheel), staging)
        # rename() is atomic on one file system: readers see either no cache or a complete one.
        if directory.exists():
            shutil.rmtree(directory)  # incomplete or damaged: replaced as a whole
        try:
            staging.rename(directory)
        except OSError:
            if not _complete(directory):  # a concurrent fetch that won the race is fine
                raise
    return directory


def _complete(directory: Path) -> bool:
    return directory.is_dir() and all(
        (directory / m.name).is_file() and _sha256(directory / m.name) == m.sha256 for m in MODELS.values())


def _download_wheel(into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *WHEEL_PLATFORM,
           "--dest", str(into), f"mediapipe=={MEDIAPIPE_VERSION}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(into.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl")) if into.is_dir() else []
    if result.returncode != 0 or not wheels:
        raise PerceptionUnavailable(f"could not download mediapipe=={MEDIAPIPE_VERSION} with pip "
                                    f"(exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return wheels[0]


def _extract(wheel: Path, into: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for m in MODELS.values():
            member = WHEEL_MODULES + m.wheel_path
            if member not in names:
                raise PerceptionUnavailable(f"{wheel.name} has no {member}")
            data = archive.read(member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != m.sha256:
                raise PerceptionUnavailable(f"{member} in {wheel.name} has sha256 {digest}, expected {m.sha256}")
            (into / m.name).write_bytes(data)
        licence = next((n for n in sorted(names) if n.endswith(".dist-info/LICENSE")), None)
        if licence is not None:
            (into / "LICENSE").write_bytes(archive.read(licence))
    (into / "NOTICE").write_text(NOTICE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
