"""Settings of the Swin Transformer blocks, registered by name (torch-free): ``swin`` (one Swin
layer: multi-head self-attention inside non-overlapping windows, shifted or not, with a
relative position bias, and an MLP) and ``patch_merge`` (2^d neighbouring tokens concatenated,
normed and projected: the Swin stages' down-sampling). Torch classes:
:mod:`skipgraph.blocks.swin`. Like the ViT blocks they read and write grid tensors
``(N, C, *spatial)``, so an encoder-decoder taps any stage with plain edges.

Liu et al., Swin Transformer: Hierarchical Vision Transformer using Shifted Windows, ICCV 2021;
conventions of MONAI's ``SwinTransformerBlock``, ``WindowAttention`` and ``PatchMerging``
(Hatamizadeh et al., Swin UNETR, BrainLes 2021).
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator

from ..fields.types import ActSetting, ExprText
from .builtin import check_positive
from .registry import BlockParams, register_block

__all__ = ["SwinParams", "PatchMergeParams"]

MAX_WINDOW = 64


class SwinParams(BlockParams):
    """One Swin layer on the node's tokens: ``t = t + attn(norm1(t)); t = t + mlp(norm2(t))``,
    where ``attn`` splits the map (zero-padded to a multiple of the window) into windows of
    ``partition``^d tokens, cyclically shifted by ``-shift`` first (and masked so that tokens
    from opposite borders do not attend to each other) and back after, and adds a learnable
    bias per head and relative offset; ``mlp`` is ``Linear(C, mlp) -> act -> dropout ->
    Linear(mlp, C) -> dropout``. Keeps the node's channels. Children: ``norm1``, ``attn.qkv``,
    ``attn.proj``, ``attn.relative_position_bias_table`` (a parameter of (2 window - 1)^d x
    heads), ``attn.relative_position_index`` (a buffer), ``norm2``, ``mlp.linear1``,
    ``mlp.linear2``."""

    type: Literal["swin"] = "swin"
    """One Swin transformer layer: (shifted) window attention with relative position bias, then an MLP."""
    heads: ExprText = 3
    """Attention heads (they must divide the channels); an expression per node, e.g.
    `num_heads[i - 1]` for a list param of heads per stage."""
    window: int = Field(7, ge=1, le=MAX_WINDOW)
    """The window side the relative position table is made for (MONAI's `window_size`)."""
    partition: ExprText | None = None
    """The window side the map is split with (default: `window`). MONAI uses a map's own size
    where it is not larger than `window` (one window, no shift), and reads the bias index for
    those first tokens: write `min(window, tokens)` for a known input size."""
    shift: ExprText = 0
    """Cyclic shift of the windows in tokens per axis (0: regular windows; Swin: half the
    window on every second layer); an expression per node, e.g. `0 if b % 2 == 1 else 3`."""
    mlp: ExprText = 96
    """Hidden width of the MLP; an expression over params and `width` (`int(width * 4.0)`)."""
    qkv_bias: bool = True
    """A bias on the query/key/value projection (Swin's default)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout after the attention output projection and after each MLP linear (MONAI's
    `drop_rate`)."""
    attn_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the attention weights (MONAI's `attn_drop_rate`)."""
    act: ActSetting = "gelu"
    """The MLP's activation (Swin: GELU)."""

    expressions = {"heads": 1, "partition": 1, "shift": 0, "mlp": 1}

    _heads = field_validator("heads", "mlp")(classmethod(
        lambda cls, v: check_positive(v, "heads / mlp", 1 << 20)))

    @field_validator("partition", "shift")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if isinstance(value, int) and not 0 <= value <= MAX_WINDOW:
            raise ValueError(f"`partition` / `shift` must be from 0 to {MAX_WINDOW}, not {value}")
        return value

    def window_used(self) -> int:
        """The window side the map is split with."""
        return self.partition if isinstance(self.partition, int) else self.window

    def export_side(self) -> int:
        """One position more than a window: two windows per axis, so the number of windows
        stays symbolic in an exported program (one window would be specialised to 1)."""
        return self.window_used() + 1

    def note(self) -> str:
        shift = self.shift if isinstance(self.shift, int) else 0
        return f"w{self.window_used()}" + (f" s{shift}" if shift else "")

    def out_channels(self, in_channels: int, width: int) -> int:
        if width != in_channels:
            raise ValueError(f"a Swin layer keeps its {in_channels} input channels (its "
                             f"residuals add them), but the node's width is {width}")
        return width

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        from .options import act_choice
        found = []
        if isinstance(self.heads, int) and out_channels % self.heads:
            found.append(f"heads: {self.heads} heads do not divide the {out_channels} channels")
        used = self.window_used()
        if used > self.window:
            found.append(f"partition: windows of {used} tokens are larger than the {self.window}"
                         " the relative position table is made for")
        if isinstance(self.shift, int) and self.shift >= used:
            found.append(f"shift: a shift of {self.shift} needs windows larger than {used}")
        if self.partition == 0:
            found.append("partition: windows need at least one token")
        name, options = act_choice(self.act)
        if name == "prelu" and getattr(options, "num_parameters", None) not in (None, 1):
            found.append("act: the MLP's PReLU acts on token maps (N, *S, features), where "
                         "torch's PReLU would read the first spatial axis as channels: use "
                         "num_parameters: 1")
        return found

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        c, mlp = out_channels, self.mlp if isinstance(self.mlp, int) else 4 * out_channels
        heads = self.heads if isinstance(self.heads, int) else 1
        from .options import layer_params
        qkv = 3 * c * c + (3 * c if self.qkv_bias else 0)
        linears = qkv + c * c + c + c * mlp + mlp + mlp * c + c  # qkv, proj, the MLP's two
        table = (2 * self.window - 1) ** dims * heads  # the relative position bias table
        return linears + 4 * c + table + layer_params("none", self.act, mlp)


class PatchMergeParams(BlockParams):
    """Swin's down-sampling by 2: the 2^d tokens of each 2 x 2 (x 2) cell concatenated (odd
    sizes zero-padded first), a LayerNorm over the 2^d C features, then a linear projection
    without bias to the node's width (Swin: 2 C). The node sits one level below its input.
    Children: ``norm``, ``reduction``."""

    type: Literal["patch_merge"] = "patch_merge"
    """Swin's patch merging: 2^d neighbouring tokens concatenated, normed and projected."""
    order: Literal["merging", "mergingv2"] = "merging"
    """The concatenation order of a 3D cell's 8 tokens, MONAI's two: `merging` (MONAI 0.9's
    (0,0,0), (1,0,0), (0,1,0), (0,0,1), (1,1,0), (1,0,1), (0,1,1), (1,1,1)) or `mergingv2`
    (d, h, w counted as a binary number). In 2D both are (0,0), (1,0), (0,1), (1,1) on (h, w);
    `check` refuses `mergingv2` there, as it would change nothing."""

    stride: ClassVar[int] = 2  # Swin merges 2 x 2 (x 2) cells: one level down
    _grid_factor: Any = PrivateAttr(default=None)  # the level step on an anisotropic grid

    def levels_down(self) -> int:
        return 1

    def on_grid(self, factor: Any) -> "PatchMergeParams":
        """A copy that knows the grid's step into its level (refused by :meth:`problems`)."""
        copy = self.model_copy()
        copy._grid_factor = factor
        return copy

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        if self._grid_factor is not None:
            return [f"patch_merge merges 2 x 2 (x 2) cells; the grid steps by "
                    f"{list(self._grid_factor)} into this level"]
        if dims == 2 and self.order == "mergingv2":
            return ["order: in 2D `merging` and `mergingv2` are the same order (use `merging`)"]
        return []

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        return 2 ** dims * in_channels * (out_channels + 2)


register_block("swin", SwinParams, "skipgraph.blocks.swin:SwinLayer",
               "Swin layer: (shifted) window attention with relative position bias + MLP")
register_block("patch_merge", PatchMergeParams, "skipgraph.blocks.swin:PatchMerging",
               "Swin's down-sampling: 2^d tokens concatenated -> LayerNorm -> linear")
