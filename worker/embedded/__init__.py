"""The embedded default: local servers and processes for a machine with nothing installed."""
