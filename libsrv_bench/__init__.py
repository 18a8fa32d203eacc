"""bench: load generation, latency percentiles, the lost-update verifier and reports."""
