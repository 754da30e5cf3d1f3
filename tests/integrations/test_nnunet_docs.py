"""docs/nnunet.md, every command block run as written: nnU-Net v2's real pipeline with a skipgraph
UNet++ on MSD hippocampus (``skipgraph nnunet convert``, nnU-Net's planning and preprocessing,
``skipgraph nnunet plans``, training and prediction through nnU-Net's entry points), importing
a model nnU-Net trained, and the page's two-arm comparison at a smoke budget.

What the test changes, and only this: ``HOME`` is a temporary folder (the page writes under
``~/nnunet``); ``pip install`` gets ``--dry-run`` (it resolves the page's extra against
constraints.txt without touching the environment under test); the comparison's budget
``6epochs_40iters`` becomes ``1epochs_2iters``. The page's commands run in bash from the
repository root, as a user copies them into one shell (the later blocks after the quick
start's ``export`` lines), with this environment's ``bin/`` first on ``PATH``.
Nothing is downloaded; the data is ``<repo>/../shared/data/msd_hippocampus`` as in CI.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOC = ROOT / "docs" / "nnunet.md"
DATA = ROOT.parent / "shared" / "data" / "msd_hippocampus"
SMOKE = "nnUNetTrainerSkipGraph_1epochs_2iters_nomirror"

pytestmark = pytest.mark.slow


def bash_blocks(text: str) -> list[str]:
    """The page's ```bash blocks, in order."""
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)


def _run_block(block: str, home: Path, timeout: int = 1800) -> str:
    block = re.sub(r"^pip install ", "pip install --dry-run ", block, flags=re.M)
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(HOME=str(home), PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                     env.get("PATH", "")]))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (block, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc.stdout


def _nnunet_checkpoint(home: Path) -> Path:
    """The import section's input, as nnU-Net writes it: ``checkpoint_final.pth`` of
    nnU-Net's own trainer on the quick start's ``nnUNetPlans`` 3d_fullres (its untrained
    weights: the section converts a checkpoint, it does not judge the training)."""
    code = f"""
import os, torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
pre = os.path.join(os.environ['nnUNet_preprocessed'], 'Dataset004_Hippocampus')
plans = load_json(os.path.join(pre, 'nnUNetPlans.json'))
plans['continue_training'] = False  # what nnU-Net's entry point adds before the trainer
trainer = nnUNetTrainer(plans, '3d_fullres', 0, load_json(os.path.join(pre, 'dataset.json')),
                        device=torch.device('cpu'))
trainer.initialize()
os.makedirs(trainer.output_folder, exist_ok=True)
trainer.save_checkpoint(os.path.join(trainer.output_folder, 'checkpoint_final.pth'))
print(trainer.output_folder)
"""
    env = {**os.environ, "nnUNet_raw": str(home / "nnunet/raw"),
           "nnUNet_preprocessed": str(home / "nnunet/preprocessed"),
           "nnUNet_results": str(home / "nnunet/results")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1]) / "checkpoint_final.pth"


def test_the_page_has_the_three_command_blocks_this_test_runs():
    blocks = bash_blocks(DOC.read_text())
    assert len(blocks) == 3, "a new command block on docs/nnunet.md needs a run here"
    assert "skipgraph nnunet convert" in blocks[0] and "skipgraph import" in blocks[1]
    assert "6epochs_40iters" in blocks[2]


def test_every_command_of_docs_nnunet_runs_as_written(tmp_path):
    pytest.importorskip("nnunetv2")
    nib = pytest.importorskip("nibabel")
    if not (DATA / "split.json").is_file():
        pytest.skip(f"MSD hippocampus not found at {DATA} (CI clones shared/ beside the repo)")
    quick_start, importing, comparison = bash_blocks(DOC.read_text())
    home = tmp_path
    # the later blocks run in the quick start's shell: its `export` lines come first
    exports = "\n".join(line for line in quick_start.splitlines() if line.startswith("export "))
    results = home / "nnunet" / "results" / "Dataset004_Hippocampus"

    # 1. the quick start: convert, plan, skipgraph plans, a smoke training, prediction
    out = _run_block(quick_start, home)
    assert "3d_fullres: dims=3, depth=3, base=32, ds=true" in out
    model = results / f"{SMOKE}__nnUNetPlansUNetPP__3d_fullres" / "fold_0"
    summary = json.loads((model / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}  # Dice of both classes on fold 0's cases
    import torch
    ckpt = torch.load(model / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    assert ckpt["trainer_name"] == SMOKE
    assert {"net.head_X0_1.weight", "net.head_X0_3.weight"} <= set(ckpt["network_weights"])
    test_cases = json.loads((DATA / "split.json").read_text())["test"]
    predicted = sorted(p.name for p in (home / "nnunet" / "pred").glob("*.nii.gz"))
    assert predicted == sorted(f"{c}.nii.gz" for c in test_cases)
    for case in test_cases[:2]:
        pred = nib.load(home / "nnunet" / "pred" / f"{case}.nii.gz")
        assert pred.shape == nib.load(DATA / "imagesTr" / f"{case}.nii.gz").shape
        assert set(map(int, pred.get_fdata().ravel())) <= {0, 1, 2}

    # 2. importing a model nnU-Net trained, and exporting it back as a trained-model folder
    _nnunet_checkpoint(home)
    _run_block(exports + "\n" + importing, home)
    assert (home / "nnunet" / "hippo.pt").is_file()
    assert (home / "nnunet" / "hippo_nnunet" / "fold_0" / "checkpoint_final.pth").is_file()

    # 3. the two-arm comparison, at a smoke budget
    _run_block(exports + "\n" + comparison.replace("6epochs_40iters", "1epochs_2iters"), home)
    for plans in ("nnUNetPlansB32", "nnUNetPlansB32SkipGraphUNetPP"):
        fold = results / f"{SMOKE}__{plans}__2d" / "fold_0"
        assert (fold / "checkpoint_final.pth").is_file(), plans
        assert set(json.loads((fold / "validation" / "summary.json").read_text())["mean"]) \
            == {"1", "2"}
