"""Base field types shared by every stage and registry (torch-free): per-axis sizes
(:mod:`.axes`), safe expressions (:mod:`.expr`) and the pydantic field types built on them
(:mod:`.types`). This package sits below the stages: it imports nothing of skipgraph but
:mod:`skipgraph.errors`, so ``spec/``, ``blocks/``, ``resampling/``, ``heads/``, ``graph/`` and
``train/`` import it without importing each other."""
