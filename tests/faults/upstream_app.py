"""A real upstream process for the fault tests (run by path: ``python upstream_app.py --port P``).

Every request is answered with a JSON echo of what arrived (method, path, headers); a path
``/slow/<seconds>/...`` waits that long first. Only loopback; stopped by the tests with signals."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


async def handle(request: web.Request) -> web.StreamResponse:
    parts = request.path.split("/")
    if len(parts) > 2 and parts[1] == "slow":
        await asyncio.sleep(float(parts[2]))
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers.items()),
            "body_length": len(body),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
