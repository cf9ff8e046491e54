"""One materialization: evaluate the rule against the stores, publish, write back."""
