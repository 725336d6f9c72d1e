"""Network weights for PyTorch: read them from a checkpoint or from an exported ONNX model.

Legend: ``N`` views, ``(H_in, W_in)`` network input size.

:func:`load_network` reads every file that holds HandNet weights and returns the network with a
:class:`ModelManifest` describing how to feed it:

* the inference checkpoints of :func:`save_network` (``torch.save`` dict with ``"network"`` (a
  :class:`NetConfig` as a dict), ``"model"`` (the state dict) and ``"codec"`` (``input_size``,
  ``stride``, ``sigma``));
* what ``handstream train`` writes (``OUT/model.pt``: ``model``, ``network``, ``recipe``, ``history``;
  ``OUT/checkpoint.pt`` adds ``optimizer`` and ``epoch``): the codec comes from ``recipe["codec"]``,
  the name from ``recipe["name"]``; optimizer state is ignored;
* an exported ``.onnx`` model with its manifest: the network is rebuilt from the manifest's
  ``network`` config with its batch norms folded into the convolutions (as the exporter folds them),
  the weights are read from the graph's initializers, and the result is checked against ONNX Runtime
  on one random input before it is returned. This lets the torch backend (CUDA graphs on a GPU) serve
  the shipped ``.onnx`` model without a separate checkpoint.

``.pt`` files are read with ``torch.load(weights_only=True)``, so loading never runs code from the file.

MediaPipe's hand landmark network (a ``"landmarks"`` model, :mod:`handstream.models.landmark_net`) has its own
pair: :func:`load_landmark_net` (the imported or an exported ``.onnx`` with its manifest, weights from the
graph's initializers, or a :func:`save_landmark_net` checkpoint) and :func:`save_landmark_net`;
:func:`load_network` sends a landmarks model there with a one-line error.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from handstream.errors import HandstreamError
from handstream.models.manifest import ModelManifest, crop_rule

ONNX_LOAD_TOLERANCE = 1e-3  # max abs diff (heatmaps ~[0, 1], presence probabilities) PyTorch vs ONNX Runtime
LANDMARK_LOAD_TOLERANCE = 1e-3  # max abs diff per landmark output in its unit (px, probability, metres)
LANDMARK_KEY = "landmark_net"  # the key of a landmark checkpoint's spec (HandNet checkpoints have "network")


def save_network(
    path: str | Path,
    net,
    *,
    input_size=(256, 192),
    stride: int = 4,
    sigma: float = 2.0,
    extra: dict[str, Any] | None = None,
    crop: dict | None = None,
) -> Path:
    """Write the inference part of a checkpoint (creates parent folders). ``input_size`` is (W_in, H_in) pixels;
    ``crop``: a refiner's window rule (kept as the recipe's ``hand_crop``, which :func:`load_network` reads)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "network": net.config.to_dict(),
        "model": net.state_dict(),
        "codec": {"input_size": list(input_size), "stride": stride, "sigma": sigma},
        **(extra or {}),
    }
    if crop is not None:
        data["recipe"] = {**(data.get("recipe") or {}), "hand_crop": dict(crop)}
    torch.save(data, path)
    return path


def load_network(path: str | Path):
    """Read HandNet weights -> (HandNet in eval mode on CPU, ModelManifest describing it).

    Args:
        path: a ``.pt``/``.pth``/``.ckpt`` checkpoint (:func:`save_network` or ``handstream train``'s
            ``model.pt`` / ``checkpoint.pt``), or an ``.onnx`` model with its ``.onnx.json`` manifest.
    Returns:
        The network (for a checkpoint: as trained, batch norms intact; for ONNX: batch norms folded,
        see :func:`fuse_batchnorm`) and a manifest: ``artifact_format`` ``checkpoint`` (or ``onnx``),
        ``input_size`` (W_in, H_in) of training, ``stride``, ``sigma``, ``network``, and in
        ``provenance`` the file's sha256 and, for training checkpoints, the recipe name, the epochs
        trained and the last epoch's metrics.
    Raises:
        HandstreamError: missing or unreadable file, not a handstream checkpoint, weights that do not fit.
    """
    path = Path(path)
    if path.suffix.lower() in (".onnx", ".json"):
        return load_onnx_network(path)

    from handstream.models.network import HandNet, NetConfig
    from handstream.records import file_sha256

    data = _read_checkpoint(path)
    if isinstance(data, dict) and LANDMARK_KEY in data:
        raise HandstreamError(f"{path}: a landmark network's checkpoint (MediaPipe's); load it with load_landmark_net")
    if not isinstance(data, dict) or "model" not in data or "network" not in data:
        raise HandstreamError(f"{path}: not a handstream checkpoint (expected keys 'network' and 'model')")
    if not isinstance(data["network"], dict) or not isinstance(data["model"], dict):
        raise HandstreamError(f"{path}: 'network' and 'model' must be dicts (a NetConfig and a state dict)")
    config = NetConfig.from_dict(data["network"], f"{path}: network")
    net = HandNet(config)
    try:
        net.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise HandstreamError(f"{path}: weights do not fit the network config ({str(exc).splitlines()[0]})") from None
    recipe = data.get("recipe") if isinstance(data.get("recipe"), dict) else {}
    codec = data.get("codec") if isinstance(data.get("codec"), dict) else recipe.get("codec", {})
    if not isinstance(codec, dict):
        codec = {}
    try:
        input_size = tuple(int(v) for v in codec.get("input_size", (256, 192)))
        stride, sigma = int(codec.get("stride", 4)), float(codec.get("sigma", 2.0))
    except (TypeError, ValueError):
        raise HandstreamError(f"{path}: codec {codec!r} is not input_size [W, H], stride, sigma") from None
    if len(input_size) != 2:
        raise HandstreamError(f"{path}: codec input_size must be [width, height], got {list(input_size)}")
    provenance: dict[str, Any] = {"checkpoint": str(path), "checkpoint_sha256": file_sha256(path)}
    history = data.get("history")
    if recipe:
        provenance["recipe_name"] = recipe.get("name")
    if isinstance(history, list) and history:
        provenance["epochs"] = len(history)
        last = history[-1]
        if isinstance(last, dict):
            provenance["metrics"] = {
                k: v for k, v in last.items() if isinstance(v, int | float) and k.startswith("val_")
            }
    manifest = ModelManifest(
        name=str(recipe.get("name") or path.stem) if recipe else path.stem,
        artifact=path.name,
        artifact_format="checkpoint",
        input_size=input_size,
        stride=stride,
        sigma=sigma,
        kpe=config.kpe,
        network=config.to_dict(),
        input_names=["image", "rays"] if config.kpe else ["image"],
        provenance=provenance,
        crop=_crop_of(recipe.get("hand_crop"), path),
    )
    return net.eval(), manifest


def _crop_of(hand_crop: Any, path: Path) -> dict | None:
    """A refiner checkpoint's window rule (its recipe's [hand_crop]) in the manifest's form; None for a detector."""
    if not isinstance(hand_crop, dict):
        return None
    rule = {"margin": hand_crop.get("margin"), "min_side": hand_crop.get("min_side", 0.0)}
    if "camera" in hand_crop:
        rule["camera"] = hand_crop["camera"]
    return crop_rule(rule, f"{path}: recipe.hand_crop")


def fuse_batchnorm(net):
    """Fold every ``Conv2d -> BatchNorm2d`` pair of ``net`` into the convolution, in place (eval only).

    The batch norm becomes ``nn.Identity`` and the convolution gains a bias; outputs are unchanged up to
    float rounding. This is what the ONNX exporter does to the graph, so a fused network has exactly the
    weights of an exported model, and it is one kernel less per layer on the torch backend.
    Returns ``net``.
    """
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net.eval()
    for module in net.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module)
        for i in range(len(children) - 1):
            if isinstance(children[i], nn.Conv2d) and isinstance(children[i + 1], nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(children[i], children[i + 1])
                module[i + 1] = nn.Identity()
    return net


def unfuse_batchnorm(fused, batches) -> Any:
    """A trainable HandNet (batch norms back in) that computes what ``fused`` computes: the inverse of
    :func:`fuse_batchnorm`, for fine-tuning an exported model (:func:`load_onnx_network`) whose checkpoint is gone.

    A fused ``Conv -> Identity`` is ``y = W x + b``. The new ``Conv -> BatchNorm`` keeps ``W`` and gets the
    statistics of ``W x`` over ``batches`` as running mean/var, ``weight = sqrt(var + eps)`` and ``bias`` = the mean
    of ``y``: in eval mode it is exactly ``W x + b``, and in training mode, where batch statistics replace the
    running ones, it is ``W x + b`` up to how far a batch's statistics are from the calibration's. (The folded
    network alone cannot be trained as it was: its batch norms are gone.)

    Args:
        fused: a HandNet with batch norms folded (:func:`fuse_batchnorm`, :func:`load_onnx_network`).
        batches: iterable of ``(image (N, 1, H_in, W_in), rays (N, 2, h, w) or None)`` tensors, inputs like the
            training data (a few hundred items are plenty).
    Returns:
        a new HandNet (eval mode, CPU) with ``fused``'s config.
    """
    import torch
    from torch import nn

    from handstream.models.network import HandNet

    net = HandNet(fused.config).eval()
    fmods = dict(fused.named_modules())
    pairs: list[tuple[str, nn.Conv2d, nn.BatchNorm2d]] = []  # (name of the fused conv, new conv, new bn)
    for name, module in net.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                pairs.append((f"{name}.{i}" if name else str(i), module[i], module[i + 1]))
    paired = {n for n, _, _ in pairs}
    with torch.no_grad():
        for name, module in net.named_modules():  # layers without a batch norm: copied as they are
            if isinstance(module, nn.Conv2d | nn.Linear) and name not in paired:
                module.load_state_dict(fmods[name].state_dict())
        for name, conv, _ in pairs:
            conv.weight.copy_(fmods[name].weight)
    sums: dict[str, list] = {n: [0.0, 0.0, 0] for n in paired}

    def hook(name):
        def record(_module, _inputs, y):
            y = y.detach().double()
            acc = sums[name]
            acc[0] = acc[0] + y.sum(dim=(0, 2, 3))
            acc[1] = acc[1] + (y * y).sum(dim=(0, 2, 3))
            acc[2] += y.numel() // y.shape[1]

        return record

    handles = [fmods[n].register_forward_hook(hook(n)) for n in paired]
    was = fused.training
    fused.eval()
    try:
        with torch.no_grad():
            for image, rays in batches:
                fused(image, rays)
    finally:
        for h in handles:
            h.remove()
        fused.train(was)
    with torch.no_grad():
        for name, _, bn in pairs:
            total, squares, count = sums[name]
            if not count:
                raise HandstreamError("unfuse_batchnorm: no calibration batches")
            mean = total / count
            var = (squares / count - mean * mean).clamp(min=0.0)
            bias = fmods[name].bias.double() if fmods[name].bias is not None else torch.zeros_like(mean)
            bn.running_mean.copy_(mean - bias)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(mean)
            bn.num_batches_tracked.zero_()
    return net


def load_onnx_network(path: str | Path, *, verify: bool = True):
    """Rebuild the PyTorch network of an exported ``.onnx`` model -> (HandNet, its manifest).

    The network comes from the manifest's ``network`` config with batch norms folded; each ``Conv`` /
    ``Gemm`` node of the graph names its weight after the module it came from (``net.<module>.weight``,
    as ``torch.onnx.export(dynamo=True)`` writes it), and its weight and bias initializers are copied
    into that module. With ``verify`` the rebuilt network is run against ONNX Runtime on one random
    input (N = 2) and must agree within :data:`ONNX_LOAD_TOLERANCE`.

    Raises:
        HandstreamError: no manifest, not an export of HandNet, or weights that cannot be matched.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from handstream.models.manifest import load_manifest
    from handstream.models.network import HandNet, NetConfig

    manifest, artifact = load_manifest(path)
    if manifest.artifact_format != "onnx":
        raise HandstreamError(
            f"{artifact}: a {manifest.artifact_format} artifact has no ONNX graph to read weights from"
        )
    if manifest.kind == "landmarks":
        raise HandstreamError(f"{artifact}: a landmarks model (MediaPipe's network); load it with load_landmark_net")
    if not manifest.network:
        raise HandstreamError(
            f"{artifact}: its manifest has no 'network' config; PyTorch cannot rebuild it (use onnxruntime)"
        )
    config = NetConfig.from_dict(manifest.network, f"{artifact}: manifest network")
    net = fuse_batchnorm(HandNet(config))
    try:
        model = onnx.load(str(artifact))
    except Exception as exc:  # onnx raises DecodeError and others for corrupt files
        raise HandstreamError(f"{artifact}: not a readable ONNX model ({str(exc).splitlines()[0]})") from None
    inits = {t.name: t for t in model.graph.initializer}
    modules = dict(net.named_modules())
    targets = {name for name, m in modules.items() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)}
    done: set[str] = set()

    def fail(why: str) -> HandstreamError:
        return HandstreamError(
            f"{artifact}: cannot read its weights into PyTorch ({why}); "
            "serve it with backend 'onnxruntime' or give the checkpoint"
        )

    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        wname = node.input[1]
        key = wname[4:] if wname.startswith("net.") else wname
        key = key[: -len(".weight")] if key.endswith(".weight") else key
        if key not in targets or wname not in inits:
            raise fail(f"node {node.name or node.op_type} uses weight {wname!r}, which names no layer of the network")
        if key in done:
            raise fail(f"layer {key} is used twice")
        module = modules[key]
        weight = numpy_helper.to_array(inits[wname])
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            weight = weight if trans_b else weight.T
        if tuple(weight.shape) != tuple(module.weight.shape):
            raise fail(
                f"{key}: weight {tuple(weight.shape)} in the graph, {tuple(module.weight.shape)} in the network config"
            )
        bias = np.zeros(weight.shape[0], np.float32)
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in inits:
                raise fail(f"{key}: bias {node.input[2]!r} is not an initializer")
            bias = numpy_helper.to_array(inits[node.input[2]]).reshape(-1)
        if bias.shape != (weight.shape[0],):
            raise fail(f"{key}: bias of shape {bias.shape}, expected ({weight.shape[0]},)")
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.array(weight, dtype=np.float32)))
            if module.bias is None:
                module.bias = torch.nn.Parameter(torch.from_numpy(np.array(bias, dtype=np.float32)))
            else:
                module.bias.copy_(torch.from_numpy(np.array(bias, dtype=np.float32)))
        done.add(key)
    missing = sorted(targets - done)
    if missing:
        raise fail(f"no weights in the graph for {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    net.eval()
    if verify:
        worst = _compare_with_onnxruntime(net, artifact, manifest)
        if worst > ONNX_LOAD_TOLERANCE:
            raise fail(f"the rebuilt network differs from ONNX Runtime by {worst:.2e}")
    manifest = replace(manifest, provenance={**manifest.provenance, "weights_from": artifact.name})
    return net, manifest


def _compare_with_onnxruntime(net, artifact: Path, manifest: ModelManifest) -> float:
    """Max abs difference of heatmaps and presence (probabilities), torch ``net`` vs ONNX Runtime, N = 2."""
    import onnxruntime as ort
    import torch

    w, h = manifest.input_size
    rng = np.random.default_rng(0)
    image = rng.random((2, 1, h, w), dtype=np.float32)
    rays = rng.uniform(-1.0, 1.0, (2, 2, -(-h // manifest.stride), -(-w // manifest.stride))).astype(np.float32)
    feeds = {"image": image} | ({"rays": rays} if manifest.kpe else {})
    try:
        session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        ref = session.run(None, feeds)
    except Exception as exc:  # onnxruntime's own exception types
        raise HandstreamError(f"{artifact}: onnxruntime cannot run it ({str(exc).splitlines()[0]})") from None
    with torch.inference_mode():
        heatmaps, logits = net(torch.from_numpy(image), torch.from_numpy(rays) if manifest.kpe else None)
    got = (heatmaps.numpy(), torch.sigmoid(logits).numpy())
    return max(float(np.abs(a - b).max()) for a, b in zip(got, ref, strict=True))


# --- MediaPipe's hand landmark network ---------------------------------------------------------------------------


def save_landmark_net(path: str | Path, net, manifest: ModelManifest, *, extra: dict[str, Any] | None = None) -> Path:
    """Write a LandmarkNet checkpoint (creates parent folders): ``landmark_net`` (its spec, JSON-able),
    ``model`` (the state dict) and ``manifest`` (``manifest`` as a dict: crop rule, roles, MediaPipe's provenance).
    ``extra``: more keys (an adaptation's history, ...)."""
    import torch

    if manifest.kind != "landmarks":
        raise HandstreamError(f"{path}: a LandmarkNet checkpoint needs a landmarks manifest, got a {manifest.kind} one")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**(extra or {}), LANDMARK_KEY: net.spec, "model": net.state_dict(), "manifest": manifest.to_dict()},
               path)  # fmt: skip
    return path


def load_landmark_net(path: str | Path, *, verify: bool = True):
    """Read MediaPipe's hand landmark network into PyTorch -> (LandmarkNet in eval mode on CPU, ModelManifest).

    Args:
        path: an ``.onnx`` landmarks model with its ``.onnx.json`` manifest (imported by
            :mod:`handstream.models.importer`, or exported by :func:`handstream.export.landmarks.export_landmark_onnx`):
            the layers are read from the graph and the weights from its initializers; or a ``.pt`` checkpoint of
            :func:`save_landmark_net`.
        verify: for an ``.onnx``, run the rebuilt network against ONNX Runtime on 2 random crops; a difference
            above :data:`LANDMARK_LOAD_TOLERANCE` (per output, in its unit) fails.
    Returns:
        the network and a manifest (``artifact_format`` ``onnx`` or ``checkpoint``; provenance ``weights_from``
        the file).
    Raises:
        HandstreamError (one line): missing or unreadable file, no manifest, not a landmarks model, an op that
        LandmarkNet does not read, weights that do not fit.
    """
    from handstream.models.landmark_net import LandmarkNet
    from handstream.models.manifest import load_manifest
    from handstream.records import file_sha256

    path = Path(path)
    if path.suffix.lower() in (".onnx", ".json"):
        manifest, artifact = load_manifest(path)
        if manifest.kind != "landmarks" or manifest.artifact_format != "onnx":
            raise HandstreamError(
                f"{artifact}: a {manifest.kind} {manifest.artifact_format} model, not an ONNX landmarks model"
            )
        if manifest.input_layout != "NCHW":
            raise HandstreamError(f"{artifact}: input layout {manifest.input_layout}; LandmarkNet reads NCHW graphs")
        net = LandmarkNet.from_onnx(artifact, manifest.output_roles)
        if verify:
            worst = _compare_landmarks_with_onnxruntime(net, artifact)
            if worst > LANDMARK_LOAD_TOLERANCE:
                raise HandstreamError(
                    f"{artifact}: the rebuilt LandmarkNet differs from ONNX Runtime by {worst:.2e} "
                    f"(tolerance {LANDMARK_LOAD_TOLERANCE:.0e}); serve it with backend 'onnxruntime'"
                )
        return net, replace(manifest, provenance={**manifest.provenance, "weights_from": artifact.name})

    data = _read_checkpoint(path)
    if not isinstance(data, dict) or not all(k in data for k in (LANDMARK_KEY, "model", "manifest")):
        raise HandstreamError(f"{path}: not a LandmarkNet checkpoint (expected keys {LANDMARK_KEY!r}, 'model', "
                              "'manifest')")  # fmt: skip
    try:
        net = LandmarkNet(data[LANDMARK_KEY])
    except (KeyError, TypeError, AttributeError) as exc:  # a spec with missing or mistyped steps
        raise HandstreamError(f"{path}: its {LANDMARK_KEY!r} spec is unreadable ({type(exc).__name__} {exc})") from None
    try:
        net.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise HandstreamError(f"{path}: weights do not fit the network ({str(exc).splitlines()[0]})") from None
    manifest = ModelManifest.from_dict(data["manifest"], f"{path}: manifest")
    provenance = {**manifest.provenance, "weights_from": path.name, "checkpoint_sha256": file_sha256(path)}
    return net.eval(), replace(manifest, artifact=path.name, artifact_format="checkpoint", provenance=provenance)


def _compare_landmarks_with_onnxruntime(net, artifact: Path) -> float:
    """Max abs difference over the outputs (px, probabilities, metres), LandmarkNet vs ONNX Runtime, N = 2."""
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(0).random((2, *net.spec["input_shape"]), dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a check: leave the cores to the machine
    try:
        session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
        ref = dict(zip([o.name for o in session.get_outputs()], session.run(None, {net.input_name: x}), strict=True))
    except Exception as exc:  # onnxruntime's own exception types
        raise HandstreamError(f"{artifact}: onnxruntime cannot run it ({str(exc).splitlines()[0]})") from None
    with torch.inference_mode():
        got = net(torch.from_numpy(x))
    return max(float(np.abs(got[role].numpy() - ref[name]).max()) for role, name in net.output_names.items())


def _read_checkpoint(path: Path) -> Any:
    """``torch.load`` of a checkpoint file (CPU, weights only), any failure as one line naming the file."""
    import torch

    if not path.is_file():
        raise HandstreamError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for corrupt or non-checkpoint files
        raise HandstreamError(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
