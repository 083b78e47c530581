"""The pieces of `scripts/bench`, the data-plane benchmark: gateway versus direct, in one run."""
