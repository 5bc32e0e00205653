"""Kills at chosen points of a write, to prove that what is on disk stays usable whatever the moment."""

from __future__ import annotations

import os
import shutil


class Killed(BaseException):
    """The process dies here (BaseException: nothing on the way catches it)."""


def kill_at_call(monkeypatch, number: int) -> None:
    """Kill the process at the ``number``-th filesystem rename or removal from now."""
    calls = {"n": 0}

    def deadly(original):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == number:
                raise Killed
            return original(*args, **kwargs)
        return call

    for module, name in ((os, "rename"), (os, "replace"), (os, "unlink"), (os, "symlink"), (shutil, "rmtree")):
        monkeypatch.setattr(module, name, deadly(getattr(module, name)))


def kill_everywhere(monkeypatch, write_old, write_new, check) -> int:
    """Kill ``write_new`` (over what ``write_old`` wrote) at each rename or removal in turn; after each, ``check``
    what is left. Returns how many kill points there were."""
    number = 1
    while True:
        write_old(number)
        with monkeypatch.context() as patch:
            kill_at_call(patch, number)
            try:
                write_new(number)
                return number - 1
            except Killed:
                pass
            finally:
                check(number)
        number += 1
