"""Real servers that the server tiers of the test suite start and stop (vLLM on CPU)."""
