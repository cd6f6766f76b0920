"""DataAudit: duplicates, train-eval leaks and likely mislabeled images, found with the
frozen base's own features."""
