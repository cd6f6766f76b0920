"""TFX's Tuner with a trials file: each trial's values, score and time, for the summary."""
