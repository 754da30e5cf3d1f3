"""Block registry (torch-free) and the torch blocks (imported lazily by the compiler)."""
from .registry import (BlockDef, BlockParams, RegistryError, get_block, list_blocks,
                       register_block)

__all__ = ["BlockDef", "BlockParams", "RegistryError", "get_block", "list_blocks",
           "register_block"]
