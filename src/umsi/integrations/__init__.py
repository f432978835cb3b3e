"""Bridges from umsi models to other saliency tools (optional extras, imported only from their own modules)."""
