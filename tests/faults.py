"""Fault injection for tests: a TCP proxy in front of a store that can be cut and restored."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import urlsplit


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a TCP (host, port) or unix-socket target.

    `cut()` drops every open connection and refuses new ones (the store looks down);
    `stall()` keeps connections open but forwards nothing (the store hangs); `restore()`
    lets traffic through again. `sent` counts the bytes clients sent on.
    """

    def __init__(self, host: str | None = None, port: int | None = None, unix: str | None = None):
        self._host, self._port, self._unix = host, port, unix
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.down = False
        self.port = 0
        self.sent = 0
        self._flowing = asyncio.Event()
        self._flowing.set()

    @classmethod
    def for_postgres(cls, credentials: dict[str, object]) -> TcpProxy:
        host = str(credentials["host"])
        if host.startswith("/"):
            return cls(unix=str(Path(host) / f".s.PGSQL.{credentials['port']}"))
        return cls(host=host, port=int(str(credentials["port"])))

    @classmethod
    def for_valkey(cls, url: str) -> TcpProxy:
        parts = urlsplit(url)
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or 6379)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._unix is not None:
            return await asyncio.open_unix_connection(self._unix)
        assert self._host is not None
        assert self._port is not None
        return await asyncio.open_connection(self._host, self._port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        try:
            up_reader, up_writer = await self._open_target()
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer, upstream=True), self._pipe(up_reader, writer)
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool = False
    ) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                if upstream:
                    self.sent += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def cut(self) -> None:
        self.down = True
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def stall(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self.down = False
        self._flowing.set()

    async def stop(self) -> None:
        self.cut()
        self._flowing.set()  # stalled pipes wake up and end on their closed writers
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
