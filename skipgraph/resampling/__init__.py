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

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..registry import Entry, RegisteredName, Registry, RegistryError
from ..fields.axes import KernelSize, Size, axes_text, axiswise, volume
from ..fields.types import ActSetting, KernelExpr, NormSetting, SpecModel

__all__ = ["ResampleOp", "RESAMPLE", "register_resample", "get_resample", "list_resample",
           "resample_settings", "RegistryError", "same_pad", "resample_problem", "factor_name"]


# why an op that does not read a setting rejects it (the rest: "it has no use for it")
_UNUSED = {
    "out": "a parameter-free op keeps the source's channels",
    "bias": "it has no weights",
    "kernel": "it has no kernel",
    "mode": "only `upconv` interpolates before its conv",
    "ceil": "only pooling has a ceil mode",
}


class ResampleOp(SpecModel):
    """How an edge changes resolution (``factor`` = the product of the per-level factors
    between the two levels, 2**|level change| by default, is the edge's, not the op's; an int,
    or a tuple with one factor per axis on anisotropic grids). ``out`` sets the channels of a
    parametric op; ``norm``/``act`` follow it in ``order``. Subclasses (one per op) narrow
    ``op`` to ``Literal[name]``, list the settings they read in ``uses`` (a setting written
    but not read is an error), add checks, and override the rules below that differ."""

    op: Annotated[str, RegisteredName("skipgraph.resampling:RESAMPLE")]
    """A registered resampling op. Down: `maxpool`, `avgpool`, `strided_conv`. Up: `transpose`
    (transposed conv), `bilinear` (trilinear in 3D), `nearest`, `upconv` (interpolate, then a
    conv), and any registered one. The factor is 2^(level change)."""
    kernel: KernelSize | Literal["factor"] | KernelExpr = 2
    """Kernel size of a parametric op, one int or one per axis (`[1, 3, 3]`), `factor`: the
    edge's per-axis factor (nnU-Net's transposed convs), or an expression over params and the
    edge's index variables (`kernels[i]`); for `transpose`, 2, 3 or 4 all give output = input
    x factor; `upconv` needs an odd one."""
    ceil: bool = False
    """Pooling in ceil mode (UNet3+'s full-scale skips)."""
    mode: Literal["nearest", "bilinear"] = "nearest"
    """Interpolation before `upconv`'s conv."""
    out: Literal["target", "source", "half"] | Annotated[int, Field(ge=1)] = "target"
    """Output channels of a parametric op: the destination node's width (`target`), the
    source's (`source`), half the source's (`half`), or a number."""
    bias: bool = True
    """Bias in the op's convolution."""
    norm: NormSetting = "none"
    """Normalisation after the op: none, batch, instance, group, layer, or {type: group,
    groups: 8}."""
    act: ActSetting = "none"
    """Activation after the op (relu, elu, leaky_relu, prelu, gelu, silu, tanh, sigmoid, none)."""
    order: Literal["cna", "can"] = "cna"
    """After the op: norm then activation (`cna`) or activation then norm (`can`, BiO-Net)."""

    direction: ClassVar[Literal["up", "down"]] = "down"
    parametric: ClassVar[bool] = False  # has weights (a submodule) or is a plain function
    # the settings the op reads (besides `op`); None: all of them (plugins written before)
    uses: ClassVar[frozenset[str] | None] = None

    @model_validator(mode="after")
    def _reject_unused(self) -> "ResampleOp":
        """A setting written for an op that never reads it is an error at its key (it would
        be silently ignored otherwise: `out:` on a max-pool, `mode:` on a transposed conv)."""
        if self.uses is None:
            return self
        unused = sorted(set(self.model_fields_set) - self.uses - {"op"})
        if unused:
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("unused_setting", "{message}", {"message": (
                    f"`{self.op}` does not use `{key}` ({_UNUSED.get(key, 'it has no use for it')}"
                    f"); remove it")}), loc=(key,), input=getattr(self, key)) for key in unused])
        return self

    def kernel_for(self, factor: Size) -> Size:
        """The kernel on an edge of ``factor`` (``kernel: factor`` follows the edge)."""
        return factor if self.kernel == "factor" else self.kernel

    def problem(self, dims: int, factor: Size) -> str | None:
        """What stops this op from resampling exactly by ``factor`` (checked per edge when
        the spec is expanded, so `check` reports it), or None."""
        if isinstance(self.kernel, tuple) and len(self.kernel) != dims:
            return (f"kernel {list(self.kernel)} has {len(self.kernel)} entries; a {dims}D spec "
                    f"needs one per spatial axis")
        return None

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
        if not self.parametric:
            return 0
        return volume(self.kernel_for(factor), dims) * in_channels * out_channels + \
            (out_channels if self.bias else 0)

    def value_name(self, source: str, factor: Size) -> str:
        """Name of a param-free op's value in the generated code."""
        return f"{source}_{self.op}{factor_name(factor)}"

    def require_odd_kernel(self) -> None:
        """For ops whose conv must keep the size (``upconv``, ``pixelshuffle``)."""
        if isinstance(self.kernel, str) and self.kernel != "factor":
            return  # an expression: checked once evaluated, per edge
        kernels = [self.kernel] if isinstance(self.kernel, (int, str)) else self.kernel
        if any(not isinstance(k, int) or k % 2 == 0 for k in kernels):
            raise ValueError(f"{self.op}'s conv keeps the size only with an odd kernel, not "
                             f"{self.kernel} (set `kernel: 3`)")

    def term(self, source: str, factor: Size) -> str:
        """The op in the IR printout: ``transpose(x2, X[1,1])``, ``maxpool(x(1,2,2), E[0])``."""
        return f"{self.op}(x{axes_text(factor)}, {source})"


def factor_name(factor: Size) -> str:
    """``2`` -> ``2``, ``(1, 2, 2)`` -> ``1x2x2`` (names in the generated code)."""
    return str(factor) if isinstance(factor, int) else "x".join(map(str, factor))


def same_pad(kernel: Size, factor: Size) -> Size:
    """Padding that makes a ``kernel`` window with stride ``factor`` shrink a size by exactly
    ``factor`` (and a transposed one grow it by ``factor``): ceil((kernel - factor) / 2)."""
    return axiswise(lambda k, f: max((k - f + 1) // 2, 0), kernel, factor)


def resample_problem(kernel: Size, factor: Size, padding: Size, dims: int,
                     transposed: bool = False, ceil: bool = False) -> str | None:
    """Why a ``kernel`` window with stride ``factor`` and ``padding`` does not map a size that
    is a multiple of ``factor`` to size / factor (transposed: to size x factor), or None.

    Down: floor((s + 2p - k) / f) + 1 = s / f needs k - f <= 2p < k (ceil mode: k - 2f < 2p
    <= k - f), and torch wants p <= k / 2. Up: output padding f - k + 2p must lie in [0, f)."""
    from ..fields.axes import on_axes
    for axis, (k, f, p) in enumerate(zip(on_axes(kernel, dims), on_axes(factor, dims),
                                         on_axes(padding, dims))):
        where = f" on axis {axis}" if not all(isinstance(v, int)
                                              for v in (kernel, factor, padding)) else ""
        if transposed:
            extra = f - k + 2 * p
            if not 0 <= extra < f:
                return (f"a transposed kernel {k} with stride {f}{where} cannot grow a size by "
                        f"exactly {f} (output padding {extra} would have to lie in [0, {f}))")
        elif 2 * p > k:
            return f"padding {p} is more than half the kernel {k}{where}"
        elif not (k - 2 * f < 2 * p <= k - f if ceil else k - f <= 2 * p < k):
            need = "kernel - 2 x stride < 2 x padding <= kernel - stride (ceil mode)" if ceil \
                else "kernel - stride <= 2 x padding < kernel"
            return (f"kernel {k}, stride {f} and padding {p}{where} do not shrink a size by "
                    f"exactly {f} (that needs {need})")
    return None


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
