"""A Pusher for TF Serving's layout: atomic numbered versions with warmup requests."""
