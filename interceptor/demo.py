"""The end-to-end demo on the synthetic corpus (``make demo`` / ``interceptor demo``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from interceptor.schema import Config
from interceptor.synth import generate_corpus

log = logging.getLogger(__name__)


def run_demo(out: str | Path, cfg: Config) -> None:
    """Generate the synthetic corpus under ``out/corpus``."""
    out = Path(out)
    start = time.time()
    corpus = generate_corpus(out / "corpus", cfg.synth)
    log.info("demo finished in %.0f s", time.time() - start)
    print(f"synthetic corpus: {corpus.resolve()}")
