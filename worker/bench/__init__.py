"""The benchmark: synthetic brands, the worker against the floor of its unavoidable I/O."""
