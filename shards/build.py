#!/usr/bin/env python3
"""Build WebDataset shards from a raw dataset layout: the same as ``interceptor shards build``.

    python shards/build.py {ffpp,celebdf,dfdc} --root RAW --out OUT [--split train,val,test] [--chunk 9,8]
        [--workers N] [--task-index I --num-tasks N] [--merge] [--config FILE] [KEY=VALUE ...]
"""

import os
import sys

# This directory holds inspect.py, which would shadow the standard library's inspect module: import from the
# repository root instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from interceptor.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["shards", "build", *sys.argv[1:]]))
