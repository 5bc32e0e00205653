"""The installed package: a wheel built from this checkout, installed into a fresh environment, runs the pipeline
from a directory outside the checkout (packaged configs, ``torchrun -m``, no path into the repository).

The fresh environment sees the heavy dependencies (torch, DeepSpeed, timm...) of the running interpreter through a
``.pth`` line naming its site-packages; a plain path line does not run that directory's own ``.pth`` files, so an
editable install of the checkout does not leak in: ``interceptor`` comes from the wheel alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO
from interceptor.shards.mtcnn import default_weights

pytestmark = pytest.mark.slow

BUILD_INPUTS = ("pyproject.toml", "setup.cfg", "setup.py", "README.md")  # with interceptor/, configs/: the build's inputs

TINY_CURRICULUM = """\
stages:
  - {id: 1, name: ffpp, train: [ffpp/train], val: [ffpp/val], epochs: 1, lr: 1.0e-3, init: none}
eval_sets: [ffpp/test]
"""
TINY_TRAINING = ["curriculum=tiny_curriculum.yaml", "data.batch_size=4", "data.eval_batch_size=4",
                 "data.steps_per_epoch=2", "data.workers=0"]


def check(command: list, cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    """Run ``command``; its stdout, or a failure showing its output."""
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel of this checkout (built from a copy: the checkout gets no
    build/ folder) and the running interpreter's dependencies."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    for folder in ("interceptor", "configs"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in BUILD_INPUTS:
        shutil.copy(REPO / name, source / name)
    check([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist",
           source], tmp)
    wheel, = (tmp / "dist").glob("interceptor-*.whl")
    venv = tmp / "venv"
    check([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    site, = venv.glob("lib/python*/site-packages")
    dependencies = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "dependencies.pth").write_text("".join(f"{path}\n" for path in dependencies))
    check([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "-q", wheel], tmp)
    return venv


def test_the_installed_wheel_runs_the_pipeline_outside_the_checkout(venv, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    keep = {k: os.environ[k] for k in ("HOME", "TMPDIR", "TORCH_EXTENSIONS_DIR") if k in os.environ}
    env = {**keep, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}  # no PYTHONPATH

    def interceptor(*args, timeout: float = 300) -> str:
        return check(["interceptor", *args], work, env, timeout)

    probe = ("import interceptor, json\n"
             "from interceptor.config import load_config\n"
             "from interceptor.train.curriculum import load_curriculum\n"
             "cfg = load_config('default')\n"
             "print(json.dumps([interceptor.__file__, cfg.model.backbone, len(load_curriculum(cfg).stages)]))")
    package, backbone, stages = json.loads(check([venv / "bin" / "python", "-c", probe], work, env))
    assert Path(package).is_relative_to(venv), f"interceptor imported from {package}, not from the wheel"
    assert backbone == "efficientnet_b4" and stages == 4

    interceptor("synth", "--out", "corpus", "--videos", "6", "--seconds", "1", "synth.dfdc_videos=6",
                "synth.dfdc_chunks=1")
    built = interceptor("shards", "build", "ffpp", "--root", "corpus/FaceForensics++", "--out", "shards/ffpp")
    assert sorted(built.split()) == [f"shards/ffpp/{split}/manifest.json" for split in ("test", "train", "val")]

    (work / "tiny_curriculum.yaml").write_text(TINY_CURRICULUM)
    interceptor("train", "--specialist", "cm,rr", "--shards", "shards", "--run-dir", "runs", *TINY_TRAINING,
                timeout=600)
    summary = json.loads((work / "runs" / "parallel_summary.json").read_text())
    assert sorted(summary["finished"]) == ["cm", "rr"], summary

    exported = interceptor("export", "--runs", "runs", "--out", "models", "curriculum=tiny_curriculum.yaml")
    assert exported.splitlines() == ["cm: models/cm_model", "rr: models/rr_model"]
    interceptor("eval", "--models", "models", "--shards", "shards", "--out", "report", "--splits", "ffpp/test")
    assert (work / "report" / "report.md").is_file() and (work / "models" / "agent.json").is_file()

    video = next((work / "corpus" / "FaceForensics++" / "original_sequences").rglob("*.mp4"))
    # the face detector's weights: the facenet-pytorch wheel `make install` put beside this interpreter, which a
    # plain wheel install does not bring (README, "Setup")
    weights = f"predict.detector.weights={default_weights()}"
    verdict = json.loads(interceptor("predict", video, "--models", "models", "--json", "--set", weights))
    assert verdict["label"] in ("real", "fake") and set(verdict["specialists"]) == {"cm", "rr"}
