"""Pure wire-protocol layer: no aiohttp, no asyncio, no network, no clock reads."""
