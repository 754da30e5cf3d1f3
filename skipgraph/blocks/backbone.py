"""timm encoders split into one module per feature level (needs the `backbones` extra).

timm's ``FeatureListNet`` runs a model's top-level children in order (``flatten_sequential``
splits ``stages``/``blocks`` into their members) and collects the output of the child each
``feature_info`` entry names. The children between two such outputs are one stage: here each
stage is its own ``nn.Sequential``, so stage ``k`` maps feature ``k-1`` to feature ``k`` and the
graph compiler treats it as an ordinary node (per-stage parameters, pruning, fx, export).

Weights come only from local files: safetensors, or a ``torch.save``'d state_dict read with
``torch.load(weights_only=True)``; timm's original key names (``conv1.weight``,
``blocks.0.0.conv_dw.weight``) are expected, classifier keys are ignored, other missing or
unexpected keys are an error naming them. A first conv saved for 3 channels is adapted to
``in_channels`` as timm adapts pretrained weights (``adapt_input_conv``).

Layouts and input sizes: a model whose features are channels-last (timm's ``output_fmt ==
"NHWC"``: Swin, MaxViT's relatives) gets stages that take and return ``(N, C, H, W)`` (each
stage permutes at its ends), so every decoder sees NCHW. A model built for one input size
(a patch embedding with ``strict_img_size``, e.g. ``swin_tiny_patch4_window7_224``) is made
with ``strict_img_size=False`` where timm accepts it (Swin then pads its windows and masks
them at run time); one that cannot take other sizes is refused. The meta-device probe of
:func:`describe` falls back to the CPU for models whose construction runs operators that have
no meta kernel (RegNet's ``torch.unique``).
"""
from __future__ import annotations

import contextlib
import functools
import glob
import importlib.util
import os
import sys
from collections import OrderedDict
from typing import Any, Sequence

import torch
import torch.nn as nn

from ..backbone_registry import StageInfo
from .backbone_common import BackboneWeightsError, FrozenStage, read_weights, weight_problems

_TORCHVISION_OPS: Any = None


def _tolerate_cpu_only_torch() -> None:
    """PyPI's Linux torchvision wheels are CUDA builds: beside a CPU-only torch their C extension
    cannot load, and ``import torchvision`` (which timm does) then fails while registering meta
    kernels for its two detection ops ("operator torchvision::nms does not exist",
    pytorch/vision#9085). Encoders never call those ops; declaring their schemas lets the import
    finish. Nothing changes where the extension loads."""
    global _TORCHVISION_OPS
    spec = importlib.util.find_spec("torchvision")
    if "torchvision" in sys.modules or spec is None or not spec.origin:
        return
    for lib in glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*")):
        try:
            torch.ops.load_library(lib)
            return
        except (OSError, RuntimeError):
            pass
    _TORCHVISION_OPS = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        _TORCHVISION_OPS.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


_tolerate_cpu_only_torch()
import timm  # noqa: E402
from timm.models import FeatureListNet  # noqa: E402

__all__ = ["StageInfo", "BackboneStage", "BackboneWeightsError", "UnusableModelError",
           "describe", "build_stages", "load_backbone_weights", "stage_module", "TIMM"]


class UnusableModelError(ValueError):
    """A model timm makes whose features a U-Net cannot use (the name is right:
    ``known_model``, so no list of names is suggested)."""

    known_model = True


class BackboneStage(FrozenStage):
    """The timm modules between two feature outputs, ``(N, C_in, H, W) -> (N, C, H/s, W/s)``.
    ``channels_last``: timm's modules work on ``(N, H, W, C)`` (the input image excepted); the
    stage permutes at its ends so that it takes and returns NCHW. ``frozen``: no gradients,
    and its normalisation layers stay in eval mode (their running statistics are kept)."""

    def __init__(self, modules: "OrderedDict[str, nn.Module]", timm_model: str,
                 in_channels: int, stage: int, frozen: bool = False,
                 channels_last: bool = False, timm_kwargs: "tuple[tuple[str, Any], ...]" = ()):
        super().__init__(modules, frozen)
        # what rebuilds it (skipgraph eject): timm_model's stage `stage` for in_channels
        # inputs, created with timm_kwargs
        self.timm_model, self.timm_in_channels, self.stage = timm_model, in_channels, stage
        self.timm_kwargs, self.channels_last = tuple(timm_kwargs), channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and self.stage > 0:  # stage 0 takes the NCHW image itself
            x = x.permute(0, 2, 3, 1)
        x = super().forward(x)
        return x.permute(0, 3, 1, 2) if self.channels_last else x


FIXED_SIZE_KWARGS = (("strict_img_size", False),)
"""What timm's fixed-input-size models (a patch embedding with ``strict_img_size``) are made
with so that they take any size the U-Net's stride allows."""


def _create(name: str, in_channels: int, device: str | None,
            kwargs: "tuple[tuple[str, Any], ...]") -> nn.Module:
    """``timm.create_model`` without weights; on ``device`` ("meta": nothing allocated) when
    the model's construction allows it, else on the CPU (a failed meta probe is retried there,
    so only what timm itself cannot build is refused)."""
    def make(dev: str | None) -> nn.Module:
        with torch.device(dev) if dev else contextlib.nullcontext():
            return timm.create_model(name, pretrained=False, in_chans=in_channels, **dict(kwargs))
    if device == "meta":
        try:
            return make(device)
        except Exception:  # noqa: BLE001 - an operator without a meta kernel, or any refusal
            pass           # the CPU attempt below gives the real answer
    try:
        return make(None)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ValueError(f"{exc}; see timm.list_models()") from None


def _fixed_size(model: nn.Module) -> tuple[int, ...] | None:
    """The one input size a timm model takes (a patch embedding with ``strict_img_size``)."""
    for m in model.modules():
        if getattr(m, "strict_img_size", False):
            size = getattr(m, "img_size", None)
            return tuple(size) if isinstance(size, (tuple, list)) else (size,)
    return None


def channels_last(model: nn.Module) -> bool:
    """Whether timm reports the model's features as ``(N, H, W, C)`` (``output_fmt``)."""
    fmt = getattr(model, "output_fmt", "NCHW")
    return str(getattr(fmt, "value", fmt)) == "NHWC"


def _model(name: str, in_channels: int, device: str | None
           ) -> tuple[nn.Module, "tuple[tuple[str, Any], ...]"]:
    """timm's model, made to take any input size, and the create_model kwargs that did it."""
    model = _create(name, in_channels, device, ())
    size = _fixed_size(model)
    if size is None:
        return model, ()
    try:
        model = _create(name, in_channels, device, FIXED_SIZE_KWARGS)
    except (TypeError, ValueError):
        model = None
    if model is None or _fixed_size(model) is not None:
        raise UnusableModelError(f"timm model `{name}` takes only {'x'.join(map(str, size))} inputs "
                         "(a fixed input size) and cannot be made with strict_img_size=False; "
                         "a U-Net takes any multiple of its total stride")
    return model, FIXED_SIZE_KWARGS


def _feature_net(name: str, in_channels: int, device: str | None = None
                 ) -> tuple[nn.Module, Any, "tuple[tuple[str, Any], ...]"]:
    """timm's model (classifier included, for loading), its FeatureListNet over all levels and
    the create_model kwargs it was made with."""
    model, kwargs = _model(name, in_channels, device)
    info = getattr(model, "feature_info", None)
    if not info:
        raise UnusableModelError(f"timm model `{name}` reports no feature levels (feature_info)")
    # feature_info names top-level children (resnet: `layer1`) or members of a top-level
    # Sequential (convnext: `stages.0`), which FeatureListNet reaches by flattening it
    for flatten in (False, True):
        try:
            net = FeatureListNet(model, out_indices=tuple(range(len(info))),
                                 flatten_sequential=flatten)
            return model, net, kwargs
        except Exception as exc:  # noqa: BLE001 - timm raises assorted errors for such models
            problem = f"{type(exc).__name__}: {exc}"
    raise UnusableModelError(f"timm model `{name}` cannot be split into sequential feature stages "
                     f"({problem})")


def _groups(net: nn.Module) -> list[list[str]]:
    """FeatureListNet children grouped by the feature output that ends each group."""
    groups, current = [], []
    for child in net.keys():
        current.append(child)
        if child in net.return_layers:
            groups.append(current)
            current = []
    return groups


def _probe_problem(model: nn.Module, net: nn.Module, in_channels: int) -> str | None:
    """Run the feature net on a ``2r x 3r`` input (``r``: its total reduction, so a size any
    U-Net over it accepts); what goes wrong, or None when every feature has the channels and
    size ``feature_info`` reports, in the model's layout."""
    channels, reductions = net.feature_info.channels(), net.feature_info.reduction()
    r = max(reductions)
    device = next(iter(net.parameters()), torch.empty(0)).device
    x = torch.zeros(1, in_channels, 2 * r, 3 * r, device=device)
    try:
        with torch.no_grad():
            feats = net.eval()(x)
    except Exception as exc:  # noqa: BLE001 - a model's own size checks raise assorted errors
        return f"a {2 * r}x{3 * r} input fails: {type(exc).__name__}: {exc}"
    nhwc = channels_last(model)
    for k, (f, c, red) in enumerate(zip(feats, channels, reductions)):
        want = (1, 2 * r // red, 3 * r // red, c) if nhwc else (1, c, 2 * r // red, 3 * r // red)
        if tuple(f.shape) != want:
            return (f"feature {k} of a {2 * r}x{3 * r} input has shape {tuple(f.shape)}, not "
                    f"{want} ({'NHWC' if nhwc else 'NCHW'}, as timm reports)")
    return None


@functools.lru_cache(maxsize=64)
def describe(name: str, in_channels: int) -> tuple[StageInfo, ...]:
    """Channels, reductions, stage members and parameter counts of ``name``'s feature levels
    (built on the meta device where timm allows it: nothing is allocated or initialised).

    The features are probed with one input of a size the U-Net's contract allows; a model
    that cannot take it (built for one size or window grid) raises ValueError saying why."""
    model, net, _ = _feature_net(name, in_channels, device="meta")
    problem = _probe_problem(model, net, in_channels)
    if problem is not None and next(iter(net.parameters()), torch.empty(0)).is_meta:
        model, net, _ = _feature_net(name, in_channels)  # an op without a meta kernel?
        problem = _probe_problem(model, net, in_channels)
    if problem is not None:
        raise UnusableModelError(f"its features cannot be used by a U-Net, which takes any multiple "
                         f"of the total reduction: {problem}")
    channels, reductions = net.feature_info.channels(), net.feature_info.reduction()
    out = []
    for k, group in enumerate(_groups(net)):
        params = sum(p.numel() for m in group for p in net[m].parameters())
        out.append(StageInfo(channels[k], reductions[k], tuple(group), params))
    return tuple(out)


def build_stages(name: str, in_channels: int, weights: str | None = None,
                 frozen: Sequence[bool] = ()) -> list[BackboneStage]:
    """The stage modules of ``name`` (random init, or the weights in the local file)."""
    model, net, kwargs = _feature_net(name, in_channels)
    if weights:
        load_backbone_weights(model, net, weights, in_channels)
    nhwc = channels_last(model)
    return [BackboneStage(OrderedDict((m, net[m]) for m in group), name, in_channels, k,
                          frozen=bool(frozen[k]) if k < len(frozen) else False,
                          channels_last=nhwc, timm_kwargs=kwargs)
            for k, group in enumerate(_groups(net))]


def stage_module(dims: int, in_channels: int, out_channels: int, params: Any) -> nn.Module:
    """The registry's builder: a stage alone has no meaning, its backbone is built at once."""
    raise TypeError(f"a `backbone` stage of {params.model} is built with its whole backbone "
                    "(skipgraph.compile.modules.build_modules), not on its own")


class _Timm:
    """The `timm` backbone provider's builder (skipgraph.backbone_registry)."""

    describe = staticmethod(describe)
    build_stages = staticmethod(build_stages)


TIMM = _Timm()


def load_backbone_weights(model: nn.Module, net: nn.Module, path: str, in_channels: int) -> None:
    """Load ``path`` into timm's ``model`` strictly for the modules the stages use."""
    from timm.models import adapt_input_conv

    state = read_weights(path)
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    key = f"{first}.weight" if isinstance(first, str) else None
    if key in state and state[key].dim() == 4 and state[key].shape[1] != in_channels:
        state = {**state, key: adapt_input_conv(in_channels, state[key])}
    problems = weight_problems(state, model, list(net.values()))
    if problems:
        arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture", "model")
        raise BackboneWeightsError(f"{path} does not fit timm's `{arch}` with {in_channels} "
                                   "input channels; " + "; ".join(problems))
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)

