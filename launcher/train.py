#!/usr/bin/env python
"""torchrun entry point: ``torchrun --nproc_per_node N launcher/train.py --specialist tm ...``.

See ``interceptor/train/launch.py`` (or ``--help``) for the options.
"""

import sys

from interceptor.train.launch import main

if __name__ == "__main__":
    sys.exit(main())
