"""The model gate's statistics: run by TFX's Evaluator (a TFMA metric), read by the summary.

`stats` is plain Python (exact McNemar p-values, Clopper-Pearson intervals); `paired` is the
TFMA metric that counts, per slice, the eval images the candidate and the blessed baseline
disagree on, so the Evaluator itself blesses or refuses on a paired test.
"""
