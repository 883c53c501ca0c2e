"""A real upstream on loopback that records every request it receives (headers, body) and echoes them."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from tests.support.ports import free_port


@dataclass
class RecordedRequest:
    method: str
    path: str
    query_string: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class EchoUpstream:
    port: int = field(default_factory=free_port)
    requests: list[RecordedRequest] = field(default_factory=list)
    big_body: bytes = b""
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            self.requests.append(
                RecordedRequest(request.method, request.path, request.query_string, CIMultiDict(request.headers), b"")
            )
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str("echo:" + msg.data)
            return ws
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path, request.query_string, CIMultiDict(request.headers), body)
        )
        if request.path == "/big":
            return web.Response(body=self.big_body, content_type="application/octet-stream")
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "headers": {k: v for k, v in request.headers.items()},
                "body_length": len(body),
            }
        )

    async def __aenter__(self) -> EchoUpstream:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
