"""The built-in store: one blob per instance, filled and read over its own STOW-RS / WADO-RS routes."""
