"""The Slurm scripts' command lines under fake sbatch / srun / scontrol / scancel (test_slurm_cluster.py runs
them on a real Slurm cluster), syntax and shellcheck."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((REPO / "slurm").glob("*.sh"))
SHELLCHECK = Path(sys.executable).parent / "shellcheck"

FAKE_SBATCH = r"""#!/usr/bin/env bash
# Runs the batch script in the foreground with the environment Slurm would give it (one run per array index).
script="$1"; shift
array=$(sed -n 's/^#SBATCH --array=\([0-9]*\)-\([0-9]*\).*/\1 \2/p' "$script")
export SLURM_JOB_NODELIST="fake[1-${FAKE_NODES}]" SLURM_JOB_NUM_NODES="$FAKE_NODES" SLURM_SUBMIT_DIR="$PWD"
if [[ -n "$array" ]]; then
  read -r first last <<<"$array"
  for ((i = first; i <= last; i++)); do
    SLURM_JOB_ID=$((1000 + i)) SLURM_ARRAY_TASK_ID=$i bash "$script" "$@" || exit $?
  done
else
  export SLURM_JOB_ID=4242
  exec bash "$script" "$@"
fi
"""

FAKE_SRUN = r"""#!/usr/bin/env bash
# Records the command each node's task would run; in FAKE_SRUN_MODE=wait, runs until SIGTERM like torchrun.
for ((node = 0; node < SLURM_JOB_NUM_NODES; node++)); do
  echo "srun node=$node $*" >> "$FAKE_LOG"
done
if [[ "${FAKE_SRUN_MODE:-exit}" == wait ]]; then
  trap 'echo "srun got TERM" >> "$FAKE_LOG"; exit 1' TERM
  echo $$ > "$FAKE_LOG.started"
  while true; do sleep 0.1; done
fi
exit 0
"""

FAKE_SCONTROL = r"""#!/usr/bin/env bash
case "$1 $2" in
  "show hostnames") for ((i = 1; i <= FAKE_NODES; i++)); do echo "fake$i"; done ;;
  requeue*) echo "scontrol requeue $2" >> "$FAKE_LOG" ;;
  *) echo "fake scontrol: unsupported $*" >&2; exit 1 ;;
esac
"""

FAKE_SCANCEL = r"""#!/usr/bin/env bash
# Records the call; `scancel --signal=TERM JOB` signals the job's steps (here: the fake srun).
echo "scancel $*" >> "$FAKE_LOG"
[[ "$1" == --signal=TERM ]] && kill -TERM "$(cat "$FAKE_LOG.started")"
exit 0
"""


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL),
                       ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "slurm.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), "FAKE_NODES": "2",
           "RUN_DIR": str(tmp_path / "runs"), "SHARDS": str(tmp_path / "shards"), "GPUS_PER_NODE": "4",
           "PYTHON": sys.executable}
    return env, log


def srun_commands(log: Path) -> list[list[str]]:
    return [shlex.split(line)[2:] for line in log.read_text().splitlines() if line.startswith("srun node=")]


def test_scripts_parse_and_pass_shellcheck():
    assert {p.name for p in SCRIPTS} >= {"curriculum.sh", "all_specialists.sh"}
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", str(script)], check=True)
    result = subprocess.run([str(SHELLCHECK), *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_curriculum_starts_one_torchrun_per_node_with_c10d_rendezvous(fake_slurm):
    env, log = fake_slurm
    result = subprocess.run(["sbatch", "slurm/curriculum.sh", "tm", "train.lr=3e-4"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = srun_commands(log)
    assert len(commands) == 2  # one torchrun per node
    for command in commands:
        torchrun = command.index("torch.distributed.run")
        assert command[torchrun - 1] == "-m" and "--ntasks-per-node=1" in command[:torchrun]
        assert "--nnodes=2" in command and "--nproc_per_node=4" in command
        assert "--rdzv_backend=c10d" in command and "--rdzv_endpoint=fake1:24242" in command
        assert "--rdzv_id=4242" in command
        assert "--shutdown-timeout=150" in command  # inside the 180 s of --signal=B:USR1@180
        launcher = command.index(str(REPO / "launcher" / "train.py"))
        args = command[launcher + 1:]
        assert args[args.index("--specialist") + 1] == "tm"
        assert args[args.index("--resume") + 1] == "auto"
        assert args[-1] == "train.lr=3e-4"
    assert "requeue" not in log.read_text()


def test_specialist_can_come_from_the_environment(fake_slurm):
    env, log = fake_slurm
    subprocess.run(["sbatch", "slurm/curriculum.sh"], cwd=REPO, env={**env, "SPECIALIST": "av"}, check=True,
                   capture_output=True, timeout=60)
    assert all(c[c.index("--specialist") + 1] == "av" for c in srun_commands(log))
    missing = subprocess.run(["sbatch", "slurm/curriculum.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "usage" in missing.stderr


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_preemption_signal_checkpoints_and_requeues(fake_slurm, sig):
    env, log = fake_slurm
    env = {**env, "FAKE_SRUN_MODE": "wait"}
    batch = subprocess.Popen(["sbatch", "slurm/curriculum.sh", "cm"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    while not Path(f"{log}.started").exists():
        assert time.time() < deadline, "srun never started"
        time.sleep(0.1)
    batch.send_signal(sig)  # what Slurm's --signal=B:USR1@180, or a preemption's SIGTERM, does
    output, _ = batch.communicate(timeout=30)
    assert batch.returncode == 75, output
    text = log.read_text()
    assert "scancel --signal=TERM 4242" in text  # Slurm signals every task of the step, on every node
    assert "srun got TERM" in text
    assert "scontrol requeue 4242" in text


def test_all_specialists_is_an_array_of_one_specialist_each(fake_slurm):
    env, log = fake_slurm
    subprocess.run(["sbatch", "slurm/all_specialists.sh"], cwd=REPO, env=env, check=True, capture_output=True,
                   timeout=120)
    commands = srun_commands(log)
    trained = [c[c.index("--specialist") + 1] for c in commands]
    assert sorted(set(trained)) == ["av", "bg", "cm", "ll", "rr", "tm"]
    assert all(trained.count(s) == 2 for s in set(trained))  # two nodes each
    jobs = {c[c.index("--specialist") + 1]: next(a for a in c if a.startswith("--rdzv_id=")) for c in commands}
    assert len(set(jobs.values())) == 6  # each specialist is its own job
