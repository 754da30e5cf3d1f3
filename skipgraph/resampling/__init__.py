"""The resampling-op registry (torch-free): what an edge does when it changes level.

An op is a settings model (a subclass of :class:`ResampleOp`, validated when the spec is read)
that states its rules: up or down, whether it has weights, its output channels, a parameter
estimate and how it is printed; plus a torch builder named by ``"pkg.module:Builder"``,
imported only when compiling. A parametric op's builder is called as
``Builder(dims, in_channels, out_channels, factor, settings) -> nn.Module``; a param-free op's
builder has ``call(dims, factor, settings) -> (function, kwargs)``, emitted as a function call in
the generated code (computed once per source even when several edges need it).

Example:
    >>> from skipgraph.resampling import get_resample
    >>> get_resample("transpose").params(op="transpose").direction
    'up'
"""
from __future__ import annotations

from typing import Annotated, Any, Callable, ClassVar, Literal

from pydantic import Field

from ..registry import Entry, RegisteredName, Registry, RegistryError
from ..spec.types import ActText, NormText, SpecModel

__all__ = ["ResampleOp", "RESAMPLE", "register_resample", "get_resample", "list_resample",
           "resample_settings", "RegistryError"]


class ResampleOp(SpecModel):
    """How an edge changes resolution (``factor`` = 2**|level change| is the edge's, not the
    op's). ``out`` sets the channels of a parametric op; ``norm``/``act`` follow it in
    ``order``. Subclasses (one per op) narrow ``op`` to ``Literal[name]``, add checks, and
    override the rules below that differ."""

    op: Annotated[str, RegisteredName("skipgraph.resampling:RESAMPLE")]
    """A registered resampling op. Down: `maxpool`, `avgpool`, `strided_conv`. Up: `transpose`
    (transposed conv), `bilinear` (trilinear in 3D), `nearest`, `upconv` (interpolate, then a
    conv), and any registered one. The factor is 2^(level change)."""
    kernel: int = Field(2, ge=1, le=15)
    """Kernel size of a parametric op; for `transpose`, 2, 3 or 4 all give output = input x
    factor; `upconv` needs an odd one."""
    ceil: bool = False
    """Pooling in ceil mode (UNet3+'s full-scale skips)."""
    mode: Literal["nearest", "bilinear"] = "nearest"
    """Interpolation before `upconv`'s conv."""
    out: Literal["target", "source", "half"] | Annotated[int, Field(ge=1)] = "target"
    """Output channels of a parametric op: the destination node's width (`target`), the
    source's (`source`), half the source's (`half`), or a number."""
    bias: bool = True
    """Bias in the op's convolution."""
    norm: NormText = "none"
    """Normalisation after the op: none, batch, instance, group, layer, or {type: group,
    groups: 8}."""
    act: ActText = "none"
    """Activation after the op (relu, elu, leaky_relu, prelu, gelu, silu, tanh, sigmoid, none)."""
    order: Literal["cna", "can"] = "cna"
    """After the op: norm then activation (`cna`) or activation then norm (`can`, BiO-Net)."""

    direction: ClassVar[Literal["up", "down"]] = "down"
    parametric: ClassVar[bool] = False  # has weights (a submodule) or is a plain function

    def out_channels(self, source: int, target: int) -> int:
        """Channels out of the op, given its input's and the destination node's width."""
        if not self.parametric:
            return source
        if isinstance(self.out, int):
            return self.out
        return {"target": target, "source": source, "half": max(source // 2, 1)}[self.out]

    def estimate_params(self, dims: int, in_channels: int, out_channels: int,
                        factor: int) -> int:
        """Weights the op allocates (for the resource guard)."""
        return (self.kernel ** dims) * in_channels * out_channels if self.parametric else 0

    def value_name(self, source: str, factor: int) -> str:
        """Name of a param-free op's value in the generated code."""
        return f"{source}_{self.op}{factor}"

    def require_odd_kernel(self) -> None:
        """For ops whose conv must keep the size (``upconv``, ``pixelshuffle``)."""
        if self.kernel % 2 == 0:
            raise ValueError(f"{self.op}'s conv keeps the size only with an odd kernel, not "
                             f"{self.kernel} (set `kernel: 3`)")

    def term(self, source: str, factor: int) -> str:
        """The op in the IR printout: ``transpose(x2, X[1,1])``."""
        return f"{self.op}(x{factor}, {source})"


RESAMPLE: Registry[ResampleOp] = Registry("resampling op", "skipgraph.resampling.builtin")


def register_resample(name: str, params: type[ResampleOp], builder: str | Callable[..., Any],
                      description: str = "", replace: bool = False) -> Entry[ResampleOp]:
    """Add a resampling op (``params.op`` must be ``Literal[name]``)."""
    return RESAMPLE.register(name, params, builder, description, replace)


def get_resample(name: str) -> Entry[ResampleOp]:
    return RESAMPLE.get(name)


def list_resample(pattern: str = "*") -> list[Entry[ResampleOp]]:
    return RESAMPLE.list(pattern)


def resample_settings(spec: ResampleOp) -> ResampleOp:
    """A spec's ``down:``/``up:`` mapping -> the settings model of its op (its own checks run)."""
    params = RESAMPLE.get(spec.op).params
    return spec if type(spec) is params else params.model_validate(
        spec.model_dump(exclude_unset=True) | {"op": spec.op})
