"""Training: recipes, the two-stage loop on Accelerate, checkpoints with exact resume."""
