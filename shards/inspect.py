#!/usr/bin/env python3
"""Summarise and validate built shards: the same as ``interceptor shards inspect``.

    python shards/inspect.py OUT [--no-checksums]
"""

import os
import sys

# Run as a script, this file would shadow the standard library's inspect module: import from the repository
# root instead of this directory.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from interceptor.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["shards", "inspect", *sys.argv[1:]]))
