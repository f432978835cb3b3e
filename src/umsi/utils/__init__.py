"""Small shared helpers (atomic file writes, logger construction)."""
