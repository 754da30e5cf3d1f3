"""Settings of the vision-transformer blocks, registered by name (torch-free): ``patch_embed``
(a patch embedding with a learnable position embedding) and ``transformer`` (one pre-norm ViT
encoder layer: multi-head self-attention and an MLP, each with a residual). Torch classes:
:mod:`skipgraph.blocks.transformer`.

Both blocks read and write grid tensors ``(N, C, *spatial)``: a node at level ``l`` holds one
token per patch of ``2**l`` pixels, with its ``C`` features as channels. Every edge family
therefore works on tokens as on any feature map, and an encoder-decoder taps a transformer's
intermediate layers with plain edges from the layer nodes (UNETR: edges out of the nodes of
layers 4, 7, 10 and 12 of a 12-layer encoder, each up-sampled by transposed convs).

Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021 (ViT); conventions of MONAI's
``PatchEmbeddingBlock`` / ``TransformerBlock`` / ``SABlock`` / ``MLPBlock``.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator

from ..fields.types import ActSetting
from .builtin import check_positive, check_stride
from .registry import BlockParams, register_block

__all__ = ["PatchEmbedParams", "TransformerParams", "TokenNormParams"]

MAX_TOKENS_PER_AXIS = 1 << 12


class PatchEmbedParams(BlockParams):
    """Non-overlapping patches -> tokens: a conv whose kernel and stride are the patch size
    ``stride`` (``(N, C_in, *S) -> (N, C, *S / stride)``), plus a learnable position
    embedding over a ``grid`` of tokens, then dropout. The node sits ``log2(stride)`` levels
    below its input, which arrives without resampling (as a strided block's). Children:
    ``proj`` (the conv), ``position`` (a parameter ``(1, prod(grid), C)``, MONAI's layout),
    ``dropout``."""

    type: Literal["patch_embed"] = "patch_embed"
    """ViT patch embedding: a conv with kernel = stride = the patch size, plus position embeddings."""
    stride: int = 16
    """The patch size, the projection's kernel and stride (a power of 2: the node sits
    log2(stride) levels below its input; ViT / UNETR: 16)."""
    grid: int | list[int] | None = None
    """Tokens per spatial axis of the learnable position embedding (one int, or one per axis):
    the input size divided by `stride`, so the network then takes that input size only
    (MONAI's `img_size // patch_size`). `null`: no position embedding."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the embedded tokens (MONAI's `dropout_rate`)."""

    _grid_stride: Any = PrivateAttr(default=None)  # per axis on an anisotropic grid (on_grid)
    _stride = field_validator("stride")(classmethod(lambda cls, v: check_stride(v)))

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: int | list[int] | None) -> int | list[int] | None:
        for n in [value] if isinstance(value, int) else value or []:
            check_positive(n, "grid", MAX_TOKENS_PER_AXIS)
        return value

    def levels_down(self) -> int:
        return self.stride.bit_length() - 1

    def on_grid(self, factor: Any) -> "PatchEmbedParams":
        """A copy whose patches are ``factor`` (one int per axis) on an anisotropic grid."""
        copy = self.model_copy()
        copy._grid_stride = factor
        return copy

    def patch(self) -> Any:
        """The patch size: ``stride``, or the grid's per-axis factor (set by :meth:`on_grid`)."""
        return self._grid_stride if self._grid_stride is not None else self.stride

    def grid_for(self, dims: int) -> tuple[int, ...] | None:
        """Tokens per axis of the position embedding (None: no position embedding)."""
        if self.grid is None:
            return None
        return tuple(self.grid) if isinstance(self.grid, list) else (self.grid,) * dims

    def note(self) -> str:
        return f"/{self.stride}"

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        if isinstance(self.grid, list) and len(self.grid) != dims:
            return [f"grid: {len(self.grid)} sizes for {dims} spatial axes"]
        return []

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        tokens = 1
        for n in self.grid_for(dims) or (0,):
            tokens *= n
        return (self.stride ** dims * in_channels + 1 + tokens) * out_channels


class TransformerParams(BlockParams):
    """One pre-norm transformer encoder layer on the node's tokens (ViT):
    ``t = t + attn(norm1(t)); t = t + mlp(norm2(t))``, where ``attn`` is
    multi-head self-attention over all tokens of the map (``heads`` heads, a combined qkv
    projection, an output projection) and ``mlp`` is ``Linear(C, mlp) -> act -> dropout ->
    Linear(mlp, C) -> dropout``; LayerNorms over the ``C`` features of each token. It keeps
    the node's channels (``(N, C, *S) -> (N, C, *S)``). Children: ``norm1``, ``attn.qkv``,
    ``attn.out_proj``, ``norm2``, ``mlp.linear1``, ``mlp.linear2``."""

    type: Literal["transformer"] = "transformer"
    """One pre-norm ViT layer: multi-head self-attention and an MLP, each with a residual."""
    heads: int = Field(12, ge=1, le=1024)
    """Attention heads; they split the node's channels, which they must divide."""
    mlp: int = Field(3072, ge=1, le=1 << 20)
    """Hidden width of the MLP (ViT-B: 3072 = 4 x 768; MONAI's `mlp_dim`)."""
    qkv_bias: bool = False
    """A bias on the query/key/value projection (MONAI's default: none)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the attention weights, the attention output and after each MLP linear
    (MONAI's `dropout_rate`)."""
    act: ActSetting = "gelu"
    """The MLP's activation (ViT: GELU)."""


    def note(self) -> str:
        return f"{self.heads}h"

    def out_channels(self, in_channels: int, width: int) -> int:
        if width != in_channels:
            raise ValueError(f"a transformer layer keeps its {in_channels} input channels (its "
                             f"residuals add them), but the node's width is {width}")
        return width

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        from .options import act_choice
        found = []
        if out_channels % self.heads:
            found.append(f"heads: {self.heads} heads do not divide the {out_channels} channels")
        name, options = act_choice(self.act)
        if name == "prelu" and getattr(options, "num_parameters", None) not in (None, 1):
            found.append("act: the MLP's PReLU acts on token sequences (N, L, features), where "
                         "torch's PReLU would read L as channels: use num_parameters: 1")
        return found

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        """Exact: qkv (bias with ``qkv_bias``), the output projection and the two MLP
        linears with their biases, two LayerNorms, the MLP's activation."""
        from .options import layer_params
        c = out_channels
        qkv = 3 * c * c + (3 * c if self.qkv_bias else 0)
        mlp = c * self.mlp + self.mlp + self.mlp * c + c
        return qkv + c * c + c + mlp + 4 * c + layer_params("none", self.act, self.mlp)


class TokenNormParams(BlockParams):
    """A LayerNorm over the ``C`` features of each token (position) of the map, with affine
    weights: ViT's closing encoder norm, or a LayerNorm2d over a conv feature map's channels
    (ConvNeXt's, smp UPerNet's on its encoder features) (``(N, C, *S) -> (N, C, *S)``; the
    `layer` norm option is a GroupNorm of one group, over the whole map). It keeps its input
    channels. Child: ``norm``."""

    type: Literal["token_norm"] = "token_norm"
    """A LayerNorm over each token's features (the channels at each position)."""
    affine: bool = True
    """Learnable scale and shift (`false`: a plain layer_norm, SwinUNETR's normalised taps)."""
    eps: float = Field(1e-5, gt=0.0, le=1.0)
    """Added to the variance before its square root (torch's default 1e-5; smp's UPerNet
    normalises its encoder features with 1e-6)."""

    def note(self) -> str:
        return "LN"

    def out_channels(self, in_channels: int, width: int) -> int:
        if width != in_channels:
            raise ValueError(f"a token norm keeps its {in_channels} input channels, but the "
                             f"node's width is {width}")
        return width

    def problems(self, dims: int, in_channels: int, out_channels: int) -> list[str]:
        return []

    def estimate_params(self, dims: int, in_channels: int, out_channels: int) -> int:
        return 2 * out_channels if self.affine else 0


register_block("patch_embed", PatchEmbedParams, "skipgraph.blocks.transformer:PatchEmbedding",
               "patch conv (kernel = stride) + learnable position embedding: ViT's tokens")
register_block("transformer", TransformerParams, "skipgraph.blocks.transformer:TransformerLayer",
               "pre-norm ViT layer: multi-head self-attention + MLP, each with a residual")
register_block("token_norm", TokenNormParams, "skipgraph.blocks.transformer:TokenNorm",
               "LayerNorm over each token's features: ViT's closing encoder norm")
