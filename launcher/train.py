#!/usr/bin/env python
"""torchrun entry point as a script: ``torchrun --nproc_per_node N launcher/train.py --specialist tm ...``.

The same as ``torchrun -m interceptor.train.launch`` (see ``interceptor/train/launch.py`` or ``--help``), for the
Slurm scripts and a checkout.
"""

import sys

from interceptor.train.launch import main

if __name__ == "__main__":
    sys.exit(main())
