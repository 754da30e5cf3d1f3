"""Bridges to other frameworks and packages: nnU-Net v2 (``nnunet``), the peers whose networks
zoo specs reproduce exactly (``peers``). Each imports its framework only when used."""
