"""Build hook: the zoo (``specs/*.yaml``), the editor schema (``docs/skipgraph.schema.json``)
and the pip constraints file that extras' install hints name (``constraints.txt``) go into the
wheel as package data, at ``skipgraph/specs/``, ``skipgraph/docs/`` and ``skipgraph/``.

The repository keeps one copy of each file at the top level, where people browse it; this hook
copies them into the build tree only, so the copies in a wheel cannot drift from the repository.
An editable install needs no copy: ``skipgraph.zoo`` falls back to the checkout's ``specs/``.
Everything else is declared in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# repository path -> path inside the package (same relative layout, so the specs' schema
# modelines `../docs/skipgraph.schema.json` resolve in an installed package as in the repo)
PACKAGE_DATA = {"specs": "specs", "docs/skipgraph.schema.json": "docs/skipgraph.schema.json",
                "constraints.txt": "constraints.txt"}


class BuildPyWithZoo(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout's files are read in place
        target = Path(self.build_lib) / "skipgraph"
        for source, dest in PACKAGE_DATA.items():
            src, out = ROOT / source, target / dest
            if src.is_dir():
                shutil.rmtree(out, ignore_errors=True)  # no stale spec from an earlier build
                out.mkdir(parents=True)
                for spec in sorted(src.glob("*.yaml")):
                    shutil.copyfile(spec, out / spec.name)
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out)


setup(cmdclass={"build_py": BuildPyWithZoo})
