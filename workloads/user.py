"""User-supplied models: an ONNX file (``onnx:/path/model.onnx``) or a Python factory
(``module:package.module:factory``).

ONNX files
----------
Inputs are generated from the graph's declared inputs. The first axis is the batch axis; any
other symbolic axis needs a value passed as a keyword parameter named after the symbol
(``get_workload("onnx:/m.onnx", seq_len=128)``). Generated data (NumPy Generator seeded with
``seed``): floating inputs standard normal; integer inputs whose name contains ``mask`` are all
ones; integer inputs that feed a ``Gather`` on an initializer (an embedding lookup) are uniform in
``[0, rows)``; other integer inputs uniform in ``[0, int_high)`` (parameter, default 2); booleans
uniform. ``build_torch`` raises :class:`TorchModelUnavailable`.

Python factories
----------------
``factory()`` returns ``(module, example_inputs)`` where ``example_inputs`` is a
``dict[str, np.ndarray]`` or a tuple of arrays (named ``input_0``, ``input_1``, ...), all sharing
the batch axis 0. ``make_inputs(b, seed)`` takes rows ``(seed + i) % n`` for ``i < b`` of the
``n`` example rows: deterministic tiling (``b > n``) or slicing (``b <= n``).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np

from workloads._cache import file_digest, package_version
from workloads._counting import count_module
from workloads._torch_workload import CachedInfoWorkload, check_batch, weight_bytes_for
from workloads.base import WorkloadInfo

ONNX_FLOPS_METHOD = (
    "estimated from the ONNX graph after shape inference at batch 1: MatMul 2*prod(out)*K, "
    "Gemm 2*M*N*K, Conv 2*prod(out)*(C_in/group)*prod(kernel); other operators not counted"
)


class TorchModelUnavailable(NotImplementedError):
    """Raised by ``build_torch`` of workloads that have no PyTorch module."""


_ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}


class OnnxFileWorkload(CachedInfoWorkload):
    """A model given as an ONNX file; runs on ONNX-consuming backends only."""

    family = "onnx"
    task = "custom"

    def __init__(self, path: str | Path, size: str = "user", **params: Any) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise ValueError(f"onnx workload: file not found: {self.path}")
        self.name = f"onnx:{self.path}"
        self.size = size
        self.params = dict(params)
        self._info = None
        self._graph: dict[str, Any] | None = None

    # -- graph inspection -----------------------------------------------------------------
    def _load_graph(self) -> dict[str, Any]:
        if self._graph is not None:
            return self._graph
        # onnx is optional (torch / onnxruntime extras)
        import onnx

        model = onnx.load(str(self.path), load_external_data=False)
        init_names = {i.name for i in model.graph.initializer}
        init_rows = {i.name: (i.dims[0] if i.dims else 0) for i in model.graph.initializer}
        inputs: dict[str, dict[str, Any]] = {}
        for vi in model.graph.input:
            if vi.name in init_names:
                continue
            tt = vi.type.tensor_type
            dims: list[int | str] = []
            for d in tt.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                else:
                    dims.append(d.dim_param or "?")
            dtype = _ONNX_DTYPES.get(tt.elem_type)
            if dtype is None:
                raise ValueError(f"{self.path}: input {vi.name!r} has unsupported element type {tt.elem_type}")
            inputs[vi.name] = {"dims": dims, "dtype": dtype, "gather_rows": None}
        for node in model.graph.node:
            if node.op_type == "Gather" and len(node.input) >= 2:
                data, idx = node.input[0], node.input[1]
                if idx in inputs and data in init_rows:
                    inputs[idx]["gather_rows"] = int(init_rows[data])
        self._graph = {"inputs": inputs, "outputs": [o.name for o in model.graph.output]}
        return self._graph

    def _per_sample_shape(self, name: str, dims: list[int | str]) -> tuple[int, ...]:
        shape = []
        missing = []
        for d in dims[1:]:
            if isinstance(d, int):
                shape.append(d)
            elif d in self.params:
                shape.append(int(self.params[d]))
            else:
                missing.append(d)
        if missing:
            raise ValueError(
                f"{self.path}: input {name!r} has symbolic dimension(s) {missing} besides the "
                f"batch axis; pass their sizes as parameters, e.g. " + ", ".join(f"{m}=128" for m in missing)
            )
        return tuple(shape)

    def input_spec(self) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
        g = self._load_graph()
        shapes = {n: self._per_sample_shape(n, v["dims"]) for n, v in g["inputs"].items()}
        dtypes = {n: v["dtype"] for n, v in g["inputs"].items()}
        return shapes, dtypes

    # -- Workload API -----------------------------------------------------------------------
    def build_torch(self) -> Any:
        raise TorchModelUnavailable(
            f"workload {self.name!r} is an ONNX file: the torch backend needs a torch model "
            "(use an ONNX backend such as onnxruntime, or a 'module:package.module:factory' "
            "workload)"
        )

    def onnx_path(self, cache_dir: Path | None = None) -> Path:
        return self.path

    def make_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        check_batch(batch_size)
        g = self._load_graph()
        shapes, dtypes = self.input_spec()
        gen = np.random.default_rng(seed)
        out: dict[str, np.ndarray] = {}
        for name, meta in g["inputs"].items():
            batch_dim = meta["dims"][0] if meta["dims"] else None
            if isinstance(batch_dim, int) and batch_dim != batch_size:
                raise ValueError(
                    f"{self.path}: input {name!r} has a fixed batch axis of {batch_dim}; "
                    f"batch_size {batch_size} is not allowed"
                )
            shape = (batch_size, *shapes[name]) if meta["dims"] else ()
            dtype = np.dtype(dtypes[name])
            if dtype.kind == "f":
                arr = gen.standard_normal(shape).astype(dtype)
            elif dtype.kind == "b":
                arr = gen.integers(0, 2, size=shape).astype(bool)
            elif "mask" in name.lower():
                arr = np.ones(shape, dtype=dtype)
            else:
                high = meta["gather_rows"] or int(self.params.get("int_high", 2))
                arr = gen.integers(0, high, size=shape).astype(dtype)
            out[name] = arr
        return out

    def cache_document(self) -> dict[str, Any]:
        return {
            "class": "OnnxFileWorkload",
            "file_sha256": file_digest(str(self.path)),
            "params": {k: str(v) for k, v in sorted(self.params.items())},
            "onnx": package_version("onnx"),
            "format": 1,
        }

    def _compute_info(self) -> WorkloadInfo:
        # onnx is optional (torch / onnxruntime extras)
        import onnx

        model = onnx.load(str(self.path))
        params = 0
        file_weight_bytes = 0
        for init in model.graph.initializer:
            n = int(np.prod(init.dims)) if init.dims else 1
            params += n
            file_weight_bytes += n * np.dtype(_ONNX_DTYPES.get(init.data_type, "float32")).itemsize
        shapes, dtypes = self.input_spec()
        flops, skipped = _onnx_matmul_flops(model, shapes)
        return WorkloadInfo(
            name=self.name,
            family=self.family,
            size=self.size,
            task=self.task,
            input_shapes=shapes,
            input_dtypes=dtypes,
            output_names=tuple(self._load_graph()["outputs"]),
            params=params,
            weight_bytes=weight_bytes_for(params),
            flops_per_sample=flops,
            flops_method=ONNX_FLOPS_METHOD,
            activation_bytes_per_sample=0,
            extra={
                "file": str(self.path),
                "file_weight_bytes": file_weight_bytes,
                "flop_nodes_without_shapes": skipped,
                "activation_bytes_method": "not estimated for ONNX files (0)",
            },
        )


def _onnx_matmul_flops(model: Any, per_sample: dict[str, tuple[int, ...]]) -> tuple[int, int]:
    """(FLOPs, number of MatMul/Gemm/Conv nodes whose shapes could not be inferred)."""
    # onnx is optional (torch / onnxruntime extras)
    import onnx
    from onnx import shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name not in per_sample:
            continue
        dims = vi.type.tensor_type.shape.dim
        concrete = (1, *per_sample[vi.name])
        for d, v in zip(dims, concrete):
            d.Clear()
            d.dim_value = int(v)
    m = shape_inference.infer_shapes(m, data_prop=True)
    shapes: dict[str, list[int] | None] = {}

    def record(vi: Any) -> None:
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [int(d.dim_value) for d in dims]

    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        record(vi)
    for init in m.graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]

    total = 0
    skipped = 0
    for node in m.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        a = shapes.get(node.input[0])
        b = shapes.get(node.input[1])
        out = shapes.get(node.output[0])
        if a is None or b is None or out is None:
            skipped += 1
            continue
        if node.op_type == "MatMul":
            total += 2 * int(np.prod(out)) * a[-1]
        elif node.op_type == "Gemm":
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            k = a[0] if trans_a else a[-1]
            total += 2 * int(np.prod(out)) * k
        else:  # Conv: weight [C_out, C_in/group, *kernel]
            total += 2 * int(np.prod(out)) * int(np.prod(b[1:]))
    return total, skipped


class ModuleFactoryWorkload(CachedInfoWorkload):
    """A torch model from ``factory()`` in an importable module (see module docstring)."""

    family = "user"
    task = "custom"

    def __init__(self, spec: str, size: str = "user", **params: Any) -> None:
        mod_name, sep, attr = spec.rpartition(":")
        if not sep or not mod_name or not attr:
            raise ValueError(f"module workload: expected 'package.module:factory', got {spec!r}")
        self.module_name = mod_name
        self.factory_name = attr
        self.name = f"module:{spec}"
        self.size = size
        self.params = dict(params)
        self._info = None
        self._built: tuple[Any, dict[str, np.ndarray]] | None = None

    def _factory(self) -> Any:
        try:
            mod = importlib.import_module(self.module_name)
        except ImportError as exc:
            raise ValueError(f"module workload: cannot import {self.module_name!r}: {exc}") from exc
        fn = getattr(mod, self.factory_name, None)
        if not callable(fn):
            raise ValueError(f"module workload: {self.module_name!r} has no callable {self.factory_name!r}")
        return fn

    def _load(self) -> tuple[Any, dict[str, np.ndarray]]:
        if self._built is not None:
            return self._built
        result = self._factory()(**self.params)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ValueError(f"module workload {self.name!r}: factory must return (module, example_inputs)")
        module, examples = result
        if isinstance(examples, dict):
            arrays = {str(k): np.asarray(v) for k, v in examples.items()}
        elif isinstance(examples, (tuple, list)):
            arrays = {f"input_{i}": np.asarray(v) for i, v in enumerate(examples)}
        else:
            raise ValueError(
                f"module workload {self.name!r}: example_inputs must be a dict of arrays or a "
                f"tuple of arrays, got {type(examples).__name__}"
            )
        rows = {a.shape[0] if a.ndim else None for a in arrays.values()}
        if len(rows) != 1 or None in rows or 0 in rows:
            raise ValueError(
                f"module workload {self.name!r}: example inputs must share a non-empty batch "
                f"axis 0; got shapes { {k: v.shape for k, v in arrays.items()} }"
            )
        module.eval()
        self._built = (module, arrays)
        return self._built

    def build_torch(self) -> Any:
        return self._load()[0]

    def make_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        check_batch(batch_size)
        _, examples = self._load()
        n = next(iter(examples.values())).shape[0]
        idx = (seed + np.arange(batch_size)) % n
        return {k: np.ascontiguousarray(v[idx]) for k, v in examples.items()}

    def cache_document(self) -> dict[str, Any]:
        fn = self._factory()
        try:
            src = inspect.getsourcefile(fn)
        except TypeError:
            src = None
        return {
            "class": "ModuleFactoryWorkload",
            "spec": self.name,
            "source_sha256": file_digest(src) if src else "",
            "params": {k: str(v) for k, v in sorted(self.params.items())},
            "torch": package_version("torch"),
            "format": 1,
        }

    def _compute_info(self) -> WorkloadInfo:
        # torch is optional: importing the zoo never imports it
        import torch

        module, examples = self._load()
        one = self.make_inputs(1, 0)
        args = tuple(torch.from_numpy(a) for a in one.values())
        counts = count_module(module, args)
        with torch.no_grad():
            out = module(*args)
        n_out = len(out) if isinstance(out, (tuple, list)) else 1
        output_names = ("output",) if n_out == 1 else tuple(f"output_{i}" for i in range(n_out))
        return WorkloadInfo(
            name=self.name,
            family=self.family,
            size=self.size,
            task=self.task,
            input_shapes={k: tuple(v.shape[1:]) for k, v in examples.items()},
            input_dtypes={k: str(v.dtype) for k, v in examples.items()},
            output_names=output_names,
            params=counts.params,
            weight_bytes=weight_bytes_for(counts.params),
            flops_per_sample=counts.flops,
            flops_method=counts.flops_method,
            activation_bytes_per_sample=counts.activation_bytes,
            extra={
                "activation_bytes_method": ("sum of output-tensor bytes of leaf modules on a batch-1 forward"),
                "example_rows": int(next(iter(examples.values())).shape[0]),
            },
        )


__all__ = ["ModuleFactoryWorkload", "OnnxFileWorkload", "TorchModelUnavailable"]
