"""The benchmark scripts still run: one tiny round of each prints its table (no timing is checked)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from training import REPO

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
sys.argv[0] = "bench"
import loader, train_step
train_step.main(["--specialist", "av", "--steps", "1", "--rounds", "1", "--batch", "2",
                 "--precision", "bf16", "--channels-last", "--device", "cpu"])
loader.main(["--shards", sys.argv[1], "--specialist", "cm", "--workers", "0", "1", "--batches", "1", "--steps", "1",
             "--rounds", "1", "data.batch_size=2", "data.shuffle_buffer=4"])
"""


def test_train_step_and_loader_benchmarks_print_their_tables(shards_root):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(shards_root)], cwd=REPO / "bench",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("| AV | ") for line in lines), result.stdout
    assert [line.split(" | ")[1] for line in lines if line.startswith("| CM | ")] == ["0", "1"], result.stdout
