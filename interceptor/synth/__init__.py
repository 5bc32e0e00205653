"""Synthetic forgery corpus: small FF++, Celeb-DF v2 and DFDC datasets in their official layouts."""

from interceptor.synth.corpus import MANIFEST, generate_corpus, plan_corpus

__all__ = ["MANIFEST", "generate_corpus", "plan_corpus"]
