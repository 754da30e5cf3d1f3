"""A folder for nnU-Net's ``nnUNet_extTrainer``: its one module exposes skipgraph's trainers."""
