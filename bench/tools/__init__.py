"""What a user's own networks and images go through: applying a trained network (`upscale`, `stylize`),
loading a user's network or a run's checkpoint, and the rules both `evaluate` commands share."""
