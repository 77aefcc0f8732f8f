"""Bundled sample data (a small RAW capture and its licence)."""
