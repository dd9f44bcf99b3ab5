"""A TCP proxy between a node and a service (redis-server) that a test can cut or freeze.

It runs on its own event loop in a thread, so that a test's own loop (or none) does not matter:
- `cut()`: every connection through it is closed at once, and new ones are refused (closed
  as soon as they are accepted) until `restore()`: the service is unreachable;
- `freeze()`: connections stay open but nothing is forwarded either way, as when the path
  between the hosts dies without a FIN or RST (a half-open connection); `restore()` forwards
  again (what was sent meanwhile is dropped: it was lost on the way).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.support import free_port

CHUNK = 65536


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.state = "open"  # "open", "cut" or "frozen"
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def url(self, scheme: str = "redis") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._close_all(stop=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self) -> None:
        self.state = "cut"
        self._call(self._close_all())

    def freeze(self) -> None:
        self.state = "frozen"

    def restore(self) -> None:
        self.state = "open"

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(5)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close_all(self, stop: bool = False) -> None:
        if stop and self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.state == "cut":
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(CHUNK):
            if self.state == "open":
                writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        writer.close()
