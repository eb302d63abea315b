"""Teacher LLM client, cache and trust checks."""
