"""aiohttp handlers for the login flows (thin: protocol logic lives in gateway.protocol)."""
