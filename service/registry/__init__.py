"""The model registry under /api/v1: models, their versions and their rollout state."""
