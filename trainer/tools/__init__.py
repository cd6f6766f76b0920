"""Tools beside the Trainer: pretraining a base, inspecting a model, Grad-CAM heatmaps."""
