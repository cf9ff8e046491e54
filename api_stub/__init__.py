"""The brand-facing audience HTTP API: stores audiences and asks the worker to materialize."""
