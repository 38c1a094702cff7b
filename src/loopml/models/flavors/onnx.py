"""ONNX models, predicted with onnxruntime.

Options: ``predict_output`` and ``proba_output`` name the graph outputs that ``predict`` and
``predict_proba`` return (default: skl2onnx's ``label`` and ``probabilities`` when present;
otherwise the only output, or a dict of all outputs). A table input is fed as one 2-D tensor
when the graph has a single input, or column by column when the graph has one input per column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument
from loopml.models.flavor import Flavor, loaded_module

__all__ = ["ONNXFlavor", "ONNXModel"]

_ONNX_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "int64": "int64",
               "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8",
               "bool": "bool", "string": "object"}


@dataclass(frozen=True)
class ONNXModel:
    """An onnxruntime session and which of its outputs answer predict and predict_proba."""

    session: Any
    predict_output: str | None
    proba_output: str | None

    def input_dtypes(self) -> dict[str, str]:
        return {i.name: _ONNX_TYPES.get(i.type[len("tensor("):-1], "float32")
                for i in self.session.get_inputs()}


def _default_outputs(names: list[str], options: Mapping[str, Any]) -> tuple[str | None, ...]:
    predict = options.get("predict_output")
    proba = options.get("proba_output")
    if predict is None and proba is None and {"label", "probabilities"} <= set(names):
        predict, proba = "label", "probabilities"
    for key, value in (("predict_output", predict), ("proba_output", proba)):
        if value is not None and value not in names:
            raise InvalidArgument(f"{key} {value!r} is not an output of the ONNX graph; its "
                                  f"outputs are: {', '.join(names)}")
    return predict, proba


class ONNXFlavor(Flavor):
    """``onnx.ModelProto`` graphs, run by onnxruntime (CPU, or CUDA with ``device='cuda'``)."""

    name = "onnx"
    packages = ("onnx", "onnxruntime", "numpy")
    extra = "onnx"

    def detect(self, model: object) -> bool:
        onnx = loaded_module("onnx")
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def save(self, model: object, directory: Path, *, options: Mapping[str, Any],
             trusted: bool) -> dict[str, Any]:
        onnx = self.import_library("onnx")
        graph = model.graph  # type: ignore[attr-defined]
        outputs = [o.name for o in graph.output]
        initializers = {i.name for i in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in initializers]
        predict, proba = _default_outputs(outputs, options)
        onnx.save_model(model, str(directory / "model.onnx"))
        return {"file": "model.onnx", "inputs": inputs, "outputs": outputs,
                "predict_output": predict, "proba_output": proba}

    def load(self, directory: Path, data: Mapping[str, Any], *, trusted: bool,
             device: str | None) -> object:
        ort = self.import_library("onnxruntime")
        providers = ["CPUExecutionProvider"]
        if device and device.startswith("cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        session = ort.InferenceSession(str(directory / str(data["file"])), providers=providers)
        return ONNXModel(session, data.get("predict_output"), data.get("proba_output"))

    def native(self, model: object) -> object:
        return model.session if isinstance(model, ONNXModel) else model

    def _feeds(self, model: ONNXModel, data: Any) -> dict[str, Any]:
        import numpy as np

        dtypes = model.input_dtypes()
        names = list(dtypes)
        if isinstance(data, Mapping):
            return {n: np.asarray(data[n]).astype(dtypes[n], copy=False) for n in names}
        if hasattr(data, "columns"):
            columns = [str(c) for c in data.columns]
            if len(names) > 1 and set(names) <= set(columns):
                return {n: data[n].to_numpy().reshape(-1, 1).astype(dtypes[n], copy=False)
                        for n in names}
            data = data.to_numpy()
        if len(names) != 1:
            raise InvalidArgument(f"the ONNX graph takes inputs {', '.join(names)}; pass a dict "
                                  "of arrays or a table with those columns")
        return {names[0]: np.asarray(data).astype(dtypes[names[0]], copy=False)}

    def _run(self, model: object, data: Any) -> dict[str, Any]:
        assert isinstance(model, ONNXModel)
        names = [o.name for o in model.session.get_outputs()]
        values = model.session.run(None, self._feeds(model, data))
        return dict(zip(names, values, strict=True))

    def predict(self, model: object, data: Any) -> Any:
        outputs = self._run(model, data)
        assert isinstance(model, ONNXModel)
        if model.predict_output is not None:
            return outputs[model.predict_output]
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    def has_predict_proba(self, model: object) -> bool:
        return isinstance(model, ONNXModel) and model.proba_output is not None

    def predict_proba(self, model: object, data: Any) -> Any:
        if not self.has_predict_proba(model):
            return super().predict_proba(model, data)
        assert isinstance(model, ONNXModel) and model.proba_output is not None
        return self._run(model, data)[model.proba_output]
