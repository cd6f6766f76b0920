"""A model load check: InfraValidator's check without Docker, in a fresh Python process."""
