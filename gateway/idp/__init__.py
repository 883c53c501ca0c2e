"""I/O clients for identity providers (aiohttp ClientSession injected)."""
