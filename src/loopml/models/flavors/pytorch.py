"""PyTorch modules: a state dict plus the module's import path, TorchScript, or torch.export.

================  =====================================  =====================================
format            saved when                             loaded by
================  =====================================  =====================================
``state_dict``    an ``nn.Module`` (the default)         ``Class(**init_kwargs)`` +
                                                         ``torch.load(weights_only=True)``
``torchscript``   a scripted module, or                  ``torch.jit.load``
                  ``options={'torchscript': True}``
``exported``      a ``torch.export.ExportedProgram``     ``torch.export.load``
================  =====================================  =====================================

Options: ``module`` (``'package.module:Class'``, default the model's own class) and
``init_kwargs`` (JSON values: the constructor's arguments). Only the state dict loads without
running code (``weights_only=True``); TorchScript and torch.export archives are unpickled by
torch, so they need ``trusted=True`` to save and to load. Predictions run under
``torch.no_grad()`` on the device given to ``load_model`` (CPU by default); floating inputs are
cast to the dtype of the module's parameters. TorchScript is deprecated as of torch 2.9+; its
deprecation warnings are silenced here because the user chose the format knowingly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument, PermissionDenied
from loopml.models.flavor import Flavor, loaded_module
from loopml.models.flavors.importpath import import_path_of, resolve_class
from loopml.models.manifest import plain_json

__all__ = ["PyTorchFlavor"]


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated",
                                category=DeprecationWarning)
        yield


def _to_numpy(output: Any) -> Any:
    if hasattr(output, "detach"):
        return output.detach().cpu().numpy()
    if isinstance(output, Mapping):
        return {str(k): _to_numpy(v) for k, v in output.items()}
    if isinstance(output, tuple | list):
        return tuple(_to_numpy(v) for v in output)
    return output


class PyTorchFlavor(Flavor):
    """``torch.nn.Module`` (including scripted modules) and ``torch.export`` programs."""

    name = "pytorch"
    packages = ("torch", "numpy")
    extra = "torch"

    def detect(self, model: object) -> bool:
        torch = loaded_module("torch")
        if torch is None:
            return False
        exported = getattr(getattr(torch, "export", None), "ExportedProgram", None)
        kinds = (torch.nn.Module,) if exported is None else (torch.nn.Module, exported)
        return isinstance(model, kinds)

    def _torch(self) -> Any:
        return self.import_library("torch")

    def _check_rebuild(self, torch: Any, model: Any, cls: type, init_kwargs: dict[str, Any]
                       ) -> None:
        try:
            with torch.device("meta"):
                probe = cls(**init_kwargs)
        except TypeError as exc:
            raise InvalidArgument(
                f"cannot rebuild the model as {cls.__qualname__}(**{init_kwargs!r}): {exc}; "
                "give the constructor's arguments as options={'init_kwargs': {...}}") from exc
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
        if want != got:
            diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
            raise InvalidArgument(
                f"{cls.__qualname__}(**{init_kwargs!r}) builds a module whose parameters differ "
                f"from the model's ({', '.join(diff[:5])}); give the constructor arguments the "
                "model was built with as options={'init_kwargs': {...}}")

    def save(self, model: object, directory: Path, *, options: Mapping[str, Any],
             trusted: bool) -> dict[str, Any]:
        torch = self._torch()
        archive = isinstance(model, torch.export.ExportedProgram | torch.jit.ScriptModule)
        if (archive or options.get("torchscript")) and not trusted:
            raise InvalidArgument(
                "TorchScript and torch.export files are unpickled when loaded, which can run "
                "arbitrary code; pass trusted=True to save_model to accept that (loading will "
                "need it too), or save the nn.Module itself (a state dict: safe to load)")
        if isinstance(model, torch.export.ExportedProgram):
            torch.export.save(model, directory / "model.pt2")
            return {"format": "exported", "file": "model.pt2"}
        if isinstance(model, torch.jit.ScriptModule) or options.get("torchscript"):
            with _quiet_torchscript():
                scripted = (model if isinstance(model, torch.jit.ScriptModule)
                            else torch.jit.script(model))
                torch.jit.save(scripted, str(directory / "model.pt"))
            return {"format": "torchscript", "file": "model.pt"}
        class_path = str(options.get("module") or import_path_of(type(model)))
        init_kwargs = plain_json(dict(options.get("init_kwargs") or {}), "init_kwargs")
        cls = resolve_class(class_path, base=torch.nn.Module)
        self._check_rebuild(torch, model, cls, init_kwargs)
        torch.save(model.state_dict(), directory / "state_dict.pt")  # type: ignore[attr-defined]
        return {"format": "state_dict", "file": "state_dict.pt", "module": class_path,
                "init_kwargs": init_kwargs}

    def load(self, directory: Path, data: Mapping[str, Any], *, trusted: bool,
             device: str | None) -> object:
        torch = self._torch()
        target = torch.device(device or "cpu")
        path = directory / str(data["file"])
        kind = data.get("format", "state_dict")
        if kind in {"exported", "torchscript"} and not trusted:
            raise PermissionDenied(
                f"the model package at {directory} is a {kind} archive ({path.name}); torch "
                "unpickles it, which runs arbitrary code, so loopml loads it only when you vouch "
                "for its source: pass trusted=True to load_model if you trust it")
        if kind == "exported":
            return torch.export.load(path).module().to(target)  # no .eval(): fixed at export
        if kind == "torchscript":
            with _quiet_torchscript():
                module = torch.jit.load(str(path), map_location=target)
        elif kind == "state_dict":
            cls = resolve_class(str(data["module"]), base=torch.nn.Module)
            module = cls(**dict(data.get("init_kwargs") or {}))
            state = torch.load(path, map_location=target, weights_only=True)
            module.load_state_dict(state)
            module.to(target)
        else:
            raise InvalidArgument(f"unknown pytorch format {kind!r} in the model package at "
                                  f"{directory}; expected state_dict, torchscript or exported")
        return module.eval()

    def predict(self, model: object, data: Any) -> Any:
        torch = self._torch()
        module: Any = model
        first = next(iter(module.parameters()), None)
        if first is None:
            first = next(iter(module.buffers()), None)
        device = first.device if first is not None else torch.device("cpu")
        float_dtype = first.dtype if first is not None and first.is_floating_point() else None

        def tensor(value: Any) -> Any:
            array = value.to_numpy() if hasattr(value, "to_numpy") else value
            if not getattr(getattr(array, "flags", None), "writeable", True):
                array = array.copy()  # torch warns on read-only arrays (pandas copy-on-write)
            result = torch.as_tensor(array, device=device)
            if float_dtype is not None and result.is_floating_point():
                result = result.to(float_dtype)
            return result

        with torch.no_grad():
            if isinstance(data, Mapping):
                output = module(**{k: tensor(v) for k, v in data.items()})
            else:
                output = module(tensor(data))
        return _to_numpy(output)
