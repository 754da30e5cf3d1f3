"""Every built-in block type, registered on first use of the block registry (torch-free).

One import per module that registers block types; a new built-in block module adds its line
here (its settings models may then import from :mod:`.builtin` without an import circle).
"""
from . import builtin  # noqa: F401  (conv, recurrent, residual, resblock, identity)
from . import backbone_params  # noqa: F401  (backbone: the stage of a timm encoder)
from . import unit_params  # noqa: F401  (convunit and preact: MONAI's units)
from . import context_params  # noqa: F401  (sepconv, image_pool, dropout: smp's decoders)
from . import transformer_params  # noqa: F401  (patch_embed, transformer, token_norm: ViT)
from . import swin_params  # noqa: F401  (swin, patch_merge: Swin transformer)
from . import position_params  # noqa: F401  (position_attention: MA-Net's PAB)
