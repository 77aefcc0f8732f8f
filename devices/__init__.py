"""Device transports, on-device runners, memory and power sampling (issue 7)."""
