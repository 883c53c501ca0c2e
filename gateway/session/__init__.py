"""Sessions: pure model and sealed-cookie codec, plus the aiohttp glue in cookies.py."""
