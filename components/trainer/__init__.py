"""TFX's Trainer with one more optional input: the eval features DataAudit computed."""
