"""The custom properties DataAudit records on its AuditFindings; DataGate and the summary read
them (the findings themselves are `audit.json` in the artifact's folder)."""

DUPLICATE_GROUPS = "duplicate_groups"  # groups of exact or near copies
LEAKED_EVAL_IMAGES = "leaked_eval_images"  # eval images with a copy in train
EVAL_IMAGES = "eval_images"  # eval images audited
TRAIN_IMAGES = "train_images"
SUSPECTED_MISLABELS = "suspected_mislabels"
UNHASHED_IMAGES = "unhashed_images"  # images Pillow could not read: judged on features alone
DROPPED_EVAL_IMAGES = "dropped_eval_images"  # DropLeakedEval: leaked eval images left out
