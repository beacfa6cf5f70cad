"""Reading the renderer weights out of AvatarArtist's `render.pkl` without executing anything from it.

The file is an EG3D "persistence" pickle: decorated classes pickle as
`_reconstruct_persistent_obj(meta)` whose meta carries the class's full source text (the upstream loader
exec()s it), every other class by its import path. This unpickler
  - never imports a module the file names and never runs its source: persistent objects and classes
    become inert records (their meta, state and constructor arguments are kept as data);
  - rebuilds tensors itself (storages through torch.load(weights_only=True));
  - refuses every other callable (os.system, builtins.eval, torch.load, ...) with a sentence naming it.
The records are then walked like nn.Modules (`_parameters`, `_buffers`, `_modules`) to give state dicts
and `_init_kwargs` of the sub-modules our renderer uses.
"""
from __future__ import annotations

import collections
import io
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from avatar.decoder import TriplaneDecoder

# Sub-modules of G_ema this project reads (attribute names as upstream spells them).
DECODER, UV_ENCODER, SUPERRESOLUTION = "decoder", "triplnae_encoder", "superresolution"
USED_MODULES = (DECODER, UV_ENCODER, SUPERRESOLUTION)
# Where the network's own classes live (upstream packages, torch.nn); their names become inert records.
# Every other global is refused.
_CLASS_MODULE_ROOTS = ("torch.nn.modules.", "training.", "recon.", "models.", "torch_utils.", "dnnlib.",
                       "training_avatar_texture.", "Next3d.", "segmentation_models_pytorch.", "_imported_module_")


class RenderPickleError(ValueError):
    """render.pkl is not the file we expect, or asks for something this loader will not do."""


class Inert:
    """Stands in for any class the pickle names: keeps constructor arguments and state, runs nothing."""

    def __new__(cls, *args: object, **kwargs: object) -> Inert:
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.__dict__["_call_args"] = (args, kwargs)

    # Dict and list subclasses (EasyDict kwargs) are filled item by item after construction.
    def __setitem__(self, key: object, value: object) -> None:
        self.__dict__.setdefault("_items", {})[key] = value

    def append(self, value: object) -> None:
        self.__dict__.setdefault("_list", []).append(value)

    def extend(self, values: Iterable[object]) -> None:
        self.__dict__.setdefault("_list", []).extend(values)

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 2:   # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__["_state"] = state if isinstance(state, dict) else {"_value": state}


@dataclass
class PersistentRecord:
    """What `_reconstruct_persistent_obj(meta)` would have built, as data: class name, source (text only)."""
    class_name: str
    module_src: str
    state: dict[str, Any] = field(default_factory=dict)


def _safe_reconstruct_persistent(meta: object) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise RenderPickleError("render.pkl: a persistent object's meta is not an EG3D class record")
    if meta.get("version") != 6:
        raise RenderPickleError(f"render.pkl: persistence version {meta.get('version')!r} is not 6")
    state = meta.get("state")
    return PersistentRecord(class_name=str(meta.get("class_name")), module_src=str(meta.get("module_src", "")),
                            state=state if isinstance(state, dict) else {})


def _load_storage(data: object) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise RenderPickleError("render.pkl: a tensor storage is not bytes")
    return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")


def _rebuild_tensor(storage: object, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *rest: object) -> torch.Tensor:
    if isinstance(storage, torch.storage.TypedStorage):
        t = torch.empty(0, dtype=storage.dtype)
        t.set_(storage._untyped_storage, offset, size, stride)
        return t
    if isinstance(storage, torch.UntypedStorage):
        raise RenderPickleError("render.pkl: an untyped tensor storage has no dtype")
    raise RenderPickleError("render.pkl: a tensor was rebuilt from something that is not a storage")


def _rebuild_parameter(data: object, requires_grad: bool = False, *rest: object) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise RenderPickleError("render.pkl: a parameter wraps something that is not a tensor")
    return data.detach()


def _rebuild_from_type(func: object, new_type: object, args: tuple[Any, ...], state: object) -> torch.Tensor:
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise RenderPickleError("render.pkl: a tensor subclass is rebuilt with an unknown function")
    return func(*args)


def _ordered_dict(*args: Any) -> collections.OrderedDict[Any, Any]:
    return collections.OrderedDict(*args)


def _reconstructor(cls: object, base: object, state: object = None) -> Inert:
    if not (isinstance(cls, type) and issubclass(cls, Inert)):
        raise RenderPickleError("render.pkl: copyreg reconstruction of a class this loader does not know")
    return cls.__new__(cls)


_MULTIARRAY = (getattr(np, "_core", None) or np.core).multiarray   # numpy 2 renamed core to _core
_ALLOWED: dict[tuple[str, str], Callable[..., object]] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("collections", "OrderedDict"): _ordered_dict,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("torch", "Size"): torch.Size, ("torch", "device"): torch.device,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
    ("builtins", "object"): object,
    # numpy scalars and arrays (StyleGAN's gains are numpy floats); they rebuild data, never call code.
    ("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray,
    **{(f"numpy.{core}.multiarray", name): getattr(_MULTIARRAY, name)
       for core in ("core", "_core") for name in ("scalar", "_reconstruct")},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self._inert: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if name == "_reconstruct_persistent_obj" and module.split(".")[-1] == "persistence":
            return _safe_reconstruct_persistent
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        # Upstream classes (and the odd function they reference) become inert records: nothing runs.
        if module.startswith(_CLASS_MODULE_ROOTS) and name.isidentifier():
            key = (module, name)
            if key not in self._inert:
                self._inert[key] = type(name, (Inert,), {"__module__": f"inert:{module}"})
            return self._inert[key]
        raise RenderPickleError(f"render.pkl asks for {module}.{name}, which this loader refuses to run "
                                f"(only tensors and module records are read from it)")

    def persistent_load(self, pid: object) -> object:
        raise RenderPickleError("render.pkl uses persistent ids; it is not an EG3D network pickle")


def _state_of(obj: object) -> dict[str, Any] | None:
    if isinstance(obj, PersistentRecord):
        return obj.state
    if isinstance(obj, Inert):
        return obj.__dict__.get("_state")
    return None


def _class_name(obj: object) -> str:
    return obj.class_name if isinstance(obj, PersistentRecord) else type(obj).__name__


def module_state_dict(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """The flat state_dict a module record would have (parameters, persistent buffers, children, in order)."""
    state = _state_of(obj)
    if state is None:
        raise RenderPickleError(f"render.pkl: {prefix or 'the object'} is not a module record")
    out: dict[str, torch.Tensor] = {}
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = value
    skip = state.get("_non_persistent_buffers_set") or set()
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skip:
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}."))
    return out


def init_kwargs(obj: object) -> dict[str, Any]:
    state = _state_of(obj) or {}
    return _plain(state.get("_init_kwargs")) or {}


def _plain(value: object) -> Any:
    """Records of dict subclasses (EasyDict) back to plain dicts, recursively."""
    if isinstance(value, Inert) and "_items" in value.__dict__:
        value = value.__dict__["_items"]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class RenderWeights:
    """The parts of G_ema this project uses, as data."""
    decoder: dict[str, torch.Tensor]          # avatar.decoder.TriplaneDecoder state for the asset
    modules: dict[str, dict[str, torch.Tensor]]  # raw state dicts of USED_MODULES found in the file
    init_kwargs: dict[str, dict[str, Any]]    # their recorded constructor arguments (+ "G_ema")
    classes: dict[str, str]                   # their class names


def read_render_pkl(path: Path) -> RenderWeights:
    """render.pkl -> RenderWeights. Raises RenderPickleError with a sentence for anything unexpected."""
    try:
        with open(path, "rb") as f:
            data = _Unpickler(f).load()
    except RenderPickleError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, RuntimeError) as e:
        raise RenderPickleError(f"render.pkl at {path} cannot be read: {e}") from None
    if not isinstance(data, dict) or "G_ema" not in data:
        raise RenderPickleError(f"render.pkl at {path} is not an EG3D network pickle (no G_ema entry)")
    g = data["G_ema"]
    g_state = _state_of(g)
    if g_state is None:
        raise RenderPickleError(f"render.pkl at {path}: G_ema is not a module")
    children = g_state.get("_modules") or {}
    if DECODER not in children:
        raise RenderPickleError(f"render.pkl at {path}: G_ema has no '{DECODER}' module "
                                f"(found: {', '.join(children) or 'none'})")
    modules = {name: module_state_dict(children[name]) for name in USED_MODULES if children.get(name) is not None}
    kwargs = {name: init_kwargs(children[name]) for name in modules}
    kwargs["G_ema"] = init_kwargs(g)
    classes = {name: _class_name(children[name]) for name in modules}
    return RenderWeights(decoder=osg_to_decoder(children[DECODER]), modules=modules, init_kwargs=kwargs,
                         classes=classes)


def osg_to_decoder(osg: object) -> dict[str, torch.Tensor]:
    """EG3D OSGDecoder record (net.0, net.2: FullyConnectedLayer with weight/bias gains) -> our
    TriplaneDecoder's asset state. The gains are folded in: y = x (w * weight_gain)^T + b * bias_gain."""
    children = (_state_of(osg) or {}).get("_modules") or {}
    net = children.get("net")
    layers = (_state_of(net) or {}).get("_modules") or {}
    if "0" not in layers or "2" not in layers:
        raise RenderPickleError("render.pkl: the decoder has no net.0 / net.2 layers (not an OSGDecoder)")
    dec = TriplaneDecoder()
    folded = {}
    for idx in ("0", "2"):
        layer = layers[idx]
        params = module_state_dict(layer)
        if "weight" not in params or "bias" not in params:
            raise RenderPickleError(f"render.pkl: decoder layer net.{idx} has no weight and bias")
        w, b = params["weight"].float(), params["bias"].float()
        st = _state_of(layer) or {}
        if _class_name(layer) == "Linear":
            weight_gain, bias_gain = 1.0, 1.0
        else:  # EG3D's FullyConnectedLayer keeps its gains as attributes (derived from lr_multiplier)
            lr = float(init_kwargs(layer).get("lr_multiplier", 1.0))
            weight_gain = float(st.get("weight_gain", lr / w.shape[1] ** 0.5))
            bias_gain = float(st.get("bias_gain", lr))
        folded[f"net.{idx}.weight"] = w * weight_gain
        folded[f"net.{idx}.bias"] = b * bias_gain
    expected = {k: v.shape for k, v in dec.net.state_dict(prefix="net.").items()}
    for k, shape in expected.items():
        if folded[k].shape != shape:
            raise RenderPickleError(f"render.pkl: decoder {k} has shape {tuple(folded[k].shape)}, "
                                    f"expected {tuple(shape)} (EG3D OSGDecoder 32 -> 64 -> 1 + 32)")
    dec.net.load_state_dict({k[len("net."):]: v for k, v in folded.items()})
    return dec.state_for_asset()
