"""LandmarkNet: MediaPipe's hand landmark network (as :mod:`handstream.models.importer` converts it) in PyTorch.

Legend: ``N`` crops, 21 joints (MediaPipe's order, which is :mod:`handstream.skeleton`'s).

The imported ``NAME.onnx`` (tflite2onnx, NCHW, opset 11) is a MobileNetV2-like chain: 1x1 expand -> depthwise
3x3/5x5 -> 1x1 project blocks with residual adds (lite: one downsampling add whose shortcut is a 2x2 max
pool), a global average pool and four fully connected heads. The ops of the two networks:

    lite: Conv 47, Clip 32 (ReLU6), Add 10, MaxPool 1, ReduceMean 1, Gemm 4, Sigmoid 2   (1,011,712 parameters)
    full: Conv 47, Clip 32 (ReLU6), Add 9,             ReduceMean 1, Gemm 4, Sigmoid 2   (2,715,680 parameters)

(the importer's counts, 1,011,714 and 2,715,682, include the two scalar bounds the Clips share). Against ONNX
Runtime on the imported files (CPU, fp32): max 1.8e-4 px on real crops, 1e-6 on the probabilities. The batch
norms are folded into the convolutions (TFLite did that), so the network is touchy to fine-tune: a few Adam
steps at lr 1e-5 overshoot on 4 crops, 3e-6 descends.

:func:`spec_from_onnx` walks the graph once and writes it as a *spec*: a JSON-able list of steps, each an op
with its attributes, the slots (small integers: slot 0 is the input) it reads and the slot it writes.
``Conv -> Clip`` pairs become one :class:`ConvAct` layer; a ``Pad`` that only feeds a ``Conv`` (what
``torch.onnx.export`` writes for :class:`ConvAct`'s asymmetric padding) is folded back into it, so an
exported LandmarkNet reads back as the same spec. :class:`LandmarkNet` builds one named layer per
parameter-carrying step (``conv01`` .. ``conv47``, and the heads named by their role: ``landmarks``,
``presence``, ``handedness``, ``world_landmarks``) and runs the steps in order. The spec is stored in
checkpoints (:func:`handstream.models.checkpoint.save_landmark_net`) so the network is rebuilt without the ONNX
file. An op the reader does not know -> one-line :class:`HandstreamError` naming the op and the file.

Padding follows TFLite's SAME rule: stride-2 convolutions pad (top, left, bottom, right) = (0, 0, 1, 1) or
(1, 1, 2, 2), which ``nn.Conv2d`` cannot express; :class:`ConvAct` pads with ``F.pad`` then (symmetric
padding stays inside the convolution).

This module imports torch and onnx (onnx only in :func:`spec_from_onnx`); the engine's ONNX Runtime path never
imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from handstream.errors import HandstreamError
from handstream.models.landmarks import ROLES

SPEC_FORMAT = "handstream.landmark_net"
SPEC_VERSION = 1
KNOWN_OPS = ("Add", "Clip", "Constant", "Conv", "Gemm", "MaxPool", "Pad", "ReduceMean", "Relu", "Sigmoid")
"""The ONNX ops :func:`spec_from_onnx` reads: what tflite2onnx writes for MediaPipe's networks, and what
``torch.onnx.export`` may write for a LandmarkNet (Constant; Pad, unless its optimizer folds it into the Conv;
Relu)."""


class ConvAct(nn.Module):
    """Conv2d with ONNX's explicit (possibly asymmetric) zero padding, then an optional clamp (ReLU6 = [0, 6]).

    ``pads``: ONNX order (top, left, bottom, right) px; ``clip``: (min, max) or None (a linear projection).
    """

    def __init__(self, cin: int, cout: int, kernel, stride, dilation, groups: int, pads, bias: bool, clip):
        super().__init__()
        top, left, bottom, right = (int(p) for p in pads)
        symmetric = top == bottom and left == right
        self.conv = nn.Conv2d(cin, cout, tuple(kernel), tuple(stride), (top, left) if symmetric else 0,
                              tuple(dilation), groups, bias)  # fmt: skip
        self.pad = None if symmetric else (left, right, top, bottom)  # F.pad's order: last axis first
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))

    def extra_repr(self) -> str:
        parts = [f"pad(l, r, t, b)={self.pad}"] if self.pad else []
        return ", ".join(parts + ([f"clip={self.clip}"] if self.clip else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        x = self.conv(x)
        return x if self.clip is None else torch.clamp(x, self.clip[0], self.clip[1])


class LandmarkNet(nn.Module):
    """MediaPipe's hand landmark network as named PyTorch layers (module docstring).

    ``forward(x)``: x (N, 3, 224, 224) float32 RGB in [0, 1] -> dict role -> tensor: ``landmarks`` (N, 63:
    21 x (x, y, z) crop px), ``presence`` (N, 1) probability, ``handedness`` (N, 1) probability of a right hand,
    ``world_landmarks`` (N, 63) metres (:mod:`handstream.models.landmarks` decodes them).

    Attributes:
        spec: the steps (:func:`spec_from_onnx`); ``spec["outputs"]``: [role, ONNX output name, slot] in the
            graph's output order; ``spec["input"]``: the ONNX input name, ``spec["input_shape"]``: [C, H, W].
        layers: the parameter-carrying layers by name (``conv01`` .., the heads by role).
    """

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__()
        if spec.get("format") != SPEC_FORMAT or spec.get("version") != SPEC_VERSION:
            raise HandstreamError(f"LandmarkNet: not a {SPEC_FORMAT} v{SPEC_VERSION} spec")
        self.spec = {k: spec[k] for k in ("format", "version", "input", "input_shape", "outputs", "steps")}
        self.layers = nn.ModuleDict()
        for step in spec["steps"]:
            if step["op"] == "conv":
                self.layers[step["name"]] = ConvAct(step["in_channels"], step["out_channels"], step["kernel"],
                                                    step["stride"], step["dilation"], step["groups"], step["pads"],
                                                    step["bias"], step["clip"])  # fmt: skip
            elif step["op"] == "linear":
                self.layers[step["name"]] = nn.Linear(step["in_features"], step["out_features"], step["bias"])
        self._steps = [self._compile(s) for s in spec["steps"]]
        last = {}  # slot -> index of the last step that reads it: freed after it (inference memory)
        for i, s in enumerate(spec["steps"]):
            for slot in s["in"]:
                last[slot] = i
        keep = {o[2] for o in spec["outputs"]}
        self._free = [[slot for slot in s["in"] if last[slot] == i and slot not in keep]
                      for i, s in enumerate(spec["steps"])]  # fmt: skip

    @property
    def input_name(self) -> str:
        return self.spec["input"]

    @property
    def output_names(self) -> dict[str, str]:
        """role -> ONNX output name, in the graph's output order."""
        return {role: name for role, name, _ in self.spec["outputs"]}

    def _compile(self, step: dict):
        """(callable of the step's input tensors, input slots, output slot)."""
        op = step["op"]
        if op in ("conv", "linear"):
            fn = self.layers[step["name"]]
        elif op == "add":
            fn = torch.add
        elif op == "clip":
            lo, hi = step["min"], step["max"]
            fn = lambda x: torch.clamp(x, lo, hi)  # noqa: E731
        elif op == "relu":
            fn = torch.relu
        elif op == "sigmoid":
            fn = torch.sigmoid
        elif op == "maxpool":
            fn = _max_pool(step)
        elif op == "mean":
            axes, keep = tuple(step["axes"]), bool(step["keepdims"])
            fn = lambda x: x.mean(dim=axes, keepdim=keep)  # noqa: E731
        else:
            raise HandstreamError(f"LandmarkNet: spec step op {op!r} is unknown")
        return fn, tuple(step["in"]), int(step["out"])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or list(x.shape[1:]) != self.spec["input_shape"]:
            c, h, w = self.spec["input_shape"]
            raise HandstreamError(f"LandmarkNet: expected crops (N, {c}, {h}, {w}), got {tuple(x.shape)}")
        values: dict[int, torch.Tensor] = {0: x}
        for (fn, ins, out), free in zip(self._steps, self._free, strict=True):
            values[out] = fn(*(values[i] for i in ins))
            for slot in free:
                del values[slot]
        return {role: values[slot] for role, _, slot in self.spec["outputs"]}

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_onnx(cls, path: str | Path, roles: Mapping[str, str] | None = None) -> LandmarkNet:
        """The network of an ONNX landmark model with its weights (initializers as ``nn.Parameter``s).

        Args:
            path: ``NAME.onnx`` (imported by :mod:`handstream.models.importer`, or exported from a LandmarkNet).
            roles: role -> output name (the manifest's ``output_roles``); None: MediaPipe's order (:data:`ROLES`).
        Returns:
            the network in eval mode on CPU.
        Raises:
            HandstreamError (one line naming the file): unreadable, an op or attribute not read here, shapes that
            do not fit.
        """
        import onnx

        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError, OSError, ... for a missing or corrupt file
            raise HandstreamError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:160]})") from None
        spec, weights = spec_from_onnx(model, str(path), roles)
        net = cls(spec)
        state = {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in weights.items()}  # a copy
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise HandstreamError(f"{path}: weights do not fit their layers ({str(exc).splitlines()[0]})") from None
        return net.eval()


class TupleOutputs(nn.Module):
    """A LandmarkNet whose forward returns its outputs as a tuple in the ONNX graph's output order (what
    :func:`handstream.export.landmarks.export_landmark_onnx` exports)."""

    def __init__(self, net: LandmarkNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.net(x)
        return tuple(outputs[role] for role in self.net.output_names)


def _max_pool(step: dict):
    kernel, stride = tuple(step["kernel"]), tuple(step["stride"])
    top, left, bottom, right = step["pads"]
    ceil = bool(step["ceil"])
    pool = nn.MaxPool2d(kernel, stride, ceil_mode=ceil)

    def run(x: torch.Tensor) -> torch.Tensor:
        if top or left or bottom or right:  # ONNX pads a max pool with -inf
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return pool(x)

    return run


# --- reading an ONNX graph --------------------------------------------------------------------------------------


def spec_from_onnx(model, where: str, roles: Mapping[str, str] | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Walk an ONNX landmark graph -> (spec, weights: state-dict key -> array) (module docstring).

    ``where`` names the file in errors; ``roles``: role -> output name (None: the graph's outputs are
    :data:`ROLES` in order).
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consts = dict(inits)
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise HandstreamError(f"{where}: expected one input (the crops), got {[i.name for i in inputs]}")
    shape = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim][1:]
    if len(shape) != 3 or None in shape:
        raise HandstreamError(f"{where}: input {inputs[0].name!r} must be (N, C, H, W) with fixed C, H, W")
    outputs = [o.name for o in graph.output]
    if roles is None:
        if len(outputs) != len(ROLES):
            raise HandstreamError(f"{where}: expected {len(ROLES)} outputs ({', '.join(ROLES)}), got {outputs}")
        roles = dict(zip(ROLES, outputs, strict=True))
    by_name = {name: role for role, name in roles.items()}
    if sorted(roles) != sorted(ROLES) or sorted(by_name) != sorted(outputs):
        raise HandstreamError(f"{where}: output roles {dict(roles)} do not map {list(ROLES)} onto outputs {outputs}")
    nodes = list(graph.node)
    for i, node in enumerate(nodes):
        if node.op_type not in KNOWN_OPS or node.domain not in ("", "ai.onnx"):
            raise HandstreamError(
                f"{where}: ONNX op {node.op_type!r} (node {i}, {node.name[:60] or 'unnamed'}) is not supported by "
                f"LandmarkNet (it reads {', '.join(KNOWN_OPS)})"
            )
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            readers.setdefault(name, []).append(i)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    reader = _GraphReader(where, consts, readers, set(outputs))
    slots = {inputs[0].name: 0}
    steps: list[dict] = []
    weights: dict[str, np.ndarray] = {}
    skip: set[int] = set()
    counts = {"conv": 0, "linear": 0}
    for i, node in enumerate(nodes):
        if i in skip:
            continue
        op = node.op_type
        if op == "Constant":
            consts[node.output[0]] = reader.constant(node)
            continue
        if op == "Pad":
            target = reader.pad_into_conv(node, nodes)
            if target is None:
                raise HandstreamError(f"{where}: a Pad (node {i}) that does not feed one Conv is not supported")
            continue  # read again by the Conv it feeds
        step: dict[str, Any]
        data_in = [n for n in node.input if n and n not in consts]
        if op == "Conv":
            step, pad_input = reader.conv(node, nodes, producer)
            data_in = [pad_input]
            counts["conv"] += 1
            step["name"] = f"conv{counts['conv']:02d}"
            weights[f"layers.{step['name']}.conv.weight"] = reader.const(node, node.input[1])
            if step["bias"]:
                weights[f"layers.{step['name']}.conv.bias"] = reader.const(node, node.input[2]).reshape(-1)
            clip = reader.fused_clip(node, nodes)
            if clip is not None:
                j, step["clip"] = clip
                skip.add(j)
                node = nodes[j]  # the step writes the Clip's output
        elif op == "Gemm":
            step = reader.gemm(node)
            counts["linear"] += 1
            step["name"] = _head_name(node, nodes, readers, by_name) or f"fc{counts['linear']:02d}"
            w = consts[node.input[1]]
            weights[f"layers.{step['name']}.weight"] = w if reader.attrs(node).get("transB", 0) else w.T
            if step["bias"]:  # Gemm's C broadcasts: a scalar bias is one value for every output
                b = reader.const(node, node.input[2]).reshape(-1)
                weights[f"layers.{step['name']}.bias"] = np.broadcast_to(b, (step["out_features"],)).copy()
        elif op == "Add":
            if len(data_in) != 2:
                raise HandstreamError(f"{where}: an Add with a constant input (node {i}) is not supported")
            step = {"op": "add"}
        elif op == "Clip":
            lo, hi = reader.clip_range(node)
            step = {"op": "clip", "min": lo, "max": hi}
        elif op in ("Relu", "Sigmoid"):
            step = {"op": op.lower()}
        elif op == "MaxPool":
            step = reader.maxpool(node)
        else:  # ReduceMean
            step = reader.reduce_mean(node)
        missing = [n for n in data_in if n not in slots]
        if missing:
            raise HandstreamError(f"{where}: node {i} ({op}) reads {missing[0]!r}, which no earlier node writes")
        step["in"] = [slots[n] for n in data_in]
        step["out"] = slots[node.output[0]] = len(slots)
        steps.append(step)
    absent = [o for o in outputs if o not in slots]
    if absent:
        raise HandstreamError(f"{where}: outputs {absent} are written by no node LandmarkNet reads")
    spec = {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "input": inputs[0].name,
        "input_shape": shape,
        "outputs": [[by_name[o], o, slots[o]] for o in outputs],
        "steps": steps,
    }
    return spec, weights


def _head_name(node, nodes, readers, by_name: dict[str, str]) -> str | None:
    """The role of the output a Gemm writes (directly or through one Sigmoid), as the name of its layer."""
    out = node.output[0]
    if out in by_name:
        return by_name[out]
    nxt = readers.get(out, [])
    if len(nxt) == 1 and nodes[nxt[0]].op_type == "Sigmoid" and nodes[nxt[0]].output[0] in by_name:
        return by_name[nodes[nxt[0]].output[0]]
    return None


class _GraphReader:
    """Attribute checks and op -> step translation for :func:`spec_from_onnx` (errors name ``where``)."""

    def __init__(self, where: str, consts: dict, readers: dict[str, list[int]], outputs: set[str]):
        self.where, self.consts, self.readers, self.outputs = where, consts, readers, outputs

    def fail(self, node, why: str) -> HandstreamError:
        return HandstreamError(f"{self.where}: {node.op_type} node {node.name[:60] or 'unnamed'}: {why}")

    @staticmethod
    def attrs(node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def check(self, node, allowed: dict) -> dict:
        """The node's attributes; any outside ``allowed`` (name -> None: any value, else the accepted values) fails."""
        found = self.attrs(node)
        for k, v in found.items():
            ok = allowed.get(k, ())
            if ok is not None and (v.decode() if isinstance(v, bytes) else v) not in ok:
                raise self.fail(node, f"attribute {k}={v!r} is not supported")
        return found

    def const(self, node, name: str) -> np.ndarray:
        if name not in self.consts:
            raise self.fail(node, f"input {name!r} must be a constant (an initializer)")
        return np.asarray(self.consts[name])

    def constant(self, node) -> np.ndarray:
        from onnx import numpy_helper

        a = self.attrs(node)
        if "value" not in a:
            raise self.fail(node, f"only a tensor 'value' is supported, got {sorted(a)}")
        return numpy_helper.to_array(a["value"])

    def _only_reader(self, name: str, nodes, op: str) -> int | None:
        nxt = self.readers.get(name, [])
        if len(nxt) == 1 and nodes[nxt[0]].op_type == op and name not in self.outputs:
            return nxt[0]
        return None

    def pad_into_conv(self, node, nodes) -> int | None:
        """The index of the Conv a zero constant Pad feeds alone (None: it does not)."""
        return self._only_reader(node.output[0], nodes, "Conv")

    def _pad_pixels(self, node) -> list[int]:
        """A 4D zero-constant Pad's (top, left, bottom, right), from its input or (opset < 11) its attribute."""
        a = self.check(node, {"mode": ("constant",), "pads": None, "value": (0.0,)})
        pads = self.const(node, node.input[1]) if len(node.input) > 1 and node.input[1] else np.array(a.get("pads"))
        value = self.const(node, node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(1)
        if len(node.input) > 3 and node.input[3]:
            raise self.fail(node, "the 'axes' input is not supported")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        if len(pads) != 8 or any(pads[k] for k in (0, 1, 4, 5)) or np.any(value != 0) or min(pads) < 0:
            raise self.fail(node, f"only zero padding of H and W is supported, got pads {pads}")
        return [pads[2], pads[3], pads[6], pads[7]]

    def conv(self, node, nodes, producer) -> tuple[dict, str]:
        """(conv step, the data input: before a folded Pad)."""
        a = self.check(node, {"auto_pad": ("NOTSET",), "dilations": None, "group": None, "kernel_shape": None,
                              "pads": None, "strides": None})  # fmt: skip
        w = self.const(node, node.input[1])
        if w.ndim != 4:
            raise self.fail(node, f"only 2D convolutions are supported, weight {w.shape}")
        groups = int(a.get("group", 1))
        pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]  # (top, left, bottom, right)
        data = node.input[0]
        j = producer.get(data)
        if j is not None and nodes[j].op_type == "Pad" and self.pad_into_conv(nodes[j], nodes) is not None:
            extra = self._pad_pixels(nodes[j])
            pads = [p + e for p, e in zip(pads, extra, strict=True)]
            data = nodes[j].input[0]
        if len(pads) != 4:
            raise self.fail(node, f"pads {pads} are not 2D")
        kernel = [int(k) for k in a.get("kernel_shape", w.shape[2:])]
        if kernel != list(w.shape[2:]):
            raise self.fail(node, f"kernel_shape {kernel} differs from the weight's {list(w.shape[2:])}")
        step = {
            "op": "conv", "in_channels": int(w.shape[1]) * groups, "out_channels": int(w.shape[0]),
            "kernel": kernel, "stride": [int(s) for s in a.get("strides", [1, 1])],
            "dilation": [int(d) for d in a.get("dilations", [1, 1])], "groups": groups, "pads": pads,
            "bias": len(node.input) > 2 and bool(node.input[2]), "clip": None,
        }  # fmt: skip
        return step, data

    def fused_clip(self, node, nodes) -> tuple[int, list[float]] | None:
        """(index, [min, max]) of a Clip (or Relu) that alone reads a Conv's output; None: none."""
        j = self._only_reader(node.output[0], nodes, "Clip")
        if j is not None:
            return j, list(self.clip_range(nodes[j]))
        j = self._only_reader(node.output[0], nodes, "Relu")
        return None if j is None else (j, [0.0, float("inf")])

    def clip_range(self, node) -> tuple[float, float]:
        a = self.check(node, {"min": None, "max": None})  # opset < 11: attributes; 11+: inputs
        lo, hi = a.get("min", float("-inf")), a.get("max", float("inf"))
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.const(node, node.input[1]).reshape(()))
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.const(node, node.input[2]).reshape(()))
        return float(lo), float(hi)

    def gemm(self, node) -> dict:
        a = self.check(node, {"alpha": (1.0,), "beta": (1.0,), "transA": (0,), "transB": (0, 1)})
        w = self.const(node, node.input[1])
        if w.ndim != 2:
            raise self.fail(node, f"weight {w.shape} is not a matrix")
        out_f, in_f = w.shape if a.get("transB", 0) else w.shape[::-1]
        return {"op": "linear", "in_features": int(in_f), "out_features": int(out_f),
                "bias": len(node.input) > 2 and bool(node.input[2])}  # fmt: skip

    def maxpool(self, node) -> dict:
        a = self.check(node, {"auto_pad": ("NOTSET", "VALID"), "kernel_shape": None, "pads": None, "strides": None,
                              "ceil_mode": (0, 1), "dilations": ([1, 1],), "storage_order": (0,)})  # fmt: skip
        if len(node.output) > 1 and node.output[1]:
            raise self.fail(node, "the Indices output is not supported")
        kernel = [int(k) for k in a["kernel_shape"]]
        pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
        if len(kernel) != 2 or len(pads) != 4:
            raise self.fail(node, f"only 2D pooling is supported (kernel {kernel})")
        return {"op": "maxpool", "kernel": kernel, "stride": [int(s) for s in a.get("strides", [1, 1])],
                "pads": pads, "ceil": bool(a.get("ceil_mode", 0))}  # fmt: skip

    def reduce_mean(self, node) -> dict:
        a = self.check(node, {"axes": None, "keepdims": (0, 1), "noop_with_empty_axes": (0,)})
        axes = a.get("axes")
        if len(node.input) > 1 and node.input[1]:  # opset 18: axes are an input
            axes = self.const(node, node.input[1]).reshape(-1).tolist()
        if axes is None or sorted(int(x) % 4 for x in axes) != [2, 3]:
            raise self.fail(node, f"only the spatial mean (axes 2, 3) is supported, got axes {axes}")
        return {"op": "mean", "axes": [2, 3], "keepdims": bool(a.get("keepdims", 1))}


__all__ = ["KNOWN_OPS", "ConvAct", "LandmarkNet", "TupleOutputs", "spec_from_onnx"]
