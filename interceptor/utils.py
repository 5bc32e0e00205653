"""Small shared helpers: atomic and durable file writes, logging set-up, provenance."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the root logger once (console, timestamped)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    Readers never see a partial file: the temporary name starts with a dot and ends with ``suffix``. The file
    gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
        fsync_dir(target.parent)  # the rename itself survives a crash
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def fsync_dir(directory: str | os.PathLike) -> None:
    """Flush a directory's entries (new, renamed and removed names) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(directory: str | os.PathLike) -> None:
    """Flush every file and folder under ``directory`` (and itself) to disk."""
    for root, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden folder beside ``target`` to fill; when the block succeeds, ``target`` switches to it.

    ``target`` is a symbolic link to its current hidden folder ``.NAME.XXXX``, replaced by one rename, so it
    names the complete old folder or the complete new one at every moment: a kill anywhere leaves one of them,
    never a mix (say, new weights with an old description) and never nothing. The replaced folder is removed
    afterwards. A plain folder left by an older version is moved aside once, on its first replacement.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield folder
        os.chmod(folder, 0o777 & ~_umask())
        fsync_tree(folder)
        link = folder.with_name(folder.name + ".link")
        os.symlink(folder.name, link)
        if target.is_dir() and not target.is_symlink():
            os.rename(target, folder.with_name(folder.name + ".replaced"))
        os.replace(link, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    current = os.readlink(target)
    for replaced in target.parent.glob(f".{target.name}.*"):
        if replaced.name == current:
            continue
        if replaced.is_dir() and not replaced.is_symlink():
            shutil.rmtree(replaced)
        else:
            replaced.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes, suffix: str = ".tmp") -> Path:
    with atomic_path(target, suffix) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str, suffix: str = ".tmp") -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"), suffix)


def atomic_write_json(target: str | os.PathLike, data: Any, suffix: str = ".tmp") -> Path:
    return atomic_write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n", suffix)


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read JSON; an unreadable or malformed file is a ValueError naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"{path}: cannot read {what}: {err.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: malformed {what}: {err}") from None


def git_commit(repo: str | os.PathLike | None = None) -> str | None:
    """The current git commit of the source tree (with ``-dirty`` when modified), or None outside a checkout (an
    installed package, even one inside some other repository's tree, has no commit)."""
    repo = Path(repo).resolve() if repo else Path(__file__).resolve().parent.parent
    try:
        top, commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True,
            check=True).stdout.split()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, ValueError, subprocess.CalledProcessError):
        return None
    if Path(top).resolve() != repo:
        return None
    return f"{commit}-dirty" if dirty else commit


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_PERTURB = -1, -3, -6


def mallopt(param: int, value: int) -> bool:
    """glibc's ``mallopt``; False where the C library has none (not glibc)."""
    try:
        return bool(ctypes.CDLL(None).mallopt(param, value))
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def filled_allocations(byte: int = 0x55) -> Iterator[None]:
    """Within the block, glibc fills every block of memory it hands out (and every one freed) with a fixed byte.

    Native code that reads memory it never wrote then reads the same bytes in every run instead of whatever an
    earlier allocation left there. libx264, as PyAV's FFmpeg builds it, does: without this, the bytes of a video
    it encodes depend on what the process encoded before (tests/test_synth.py)."""
    mallopt(M_PERTURB, byte)
    try:
        yield
    finally:
        mallopt(M_PERTURB, 0)
