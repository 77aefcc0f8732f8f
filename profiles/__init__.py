"""Device profiles and op-support tables shipped as package data (TOML)."""
