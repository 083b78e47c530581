"""The pieces of `scripts/bench`, the data-plane benchmark: direct, nginx, mitmproxy and the gateway, in one run."""
