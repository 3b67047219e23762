"""A CEILING, NOT A PRODUCT: the least an asyncio RESP server can do, GET and SET into a dict.

The server benchmark measures catlog's server against this in the same run, to tell what catlog's
parsing, command layer and storage cost on top of asyncio itself. It has no persistence, no
limits, no error handling worth the name, and no other commands than GET, SET, PING and a
CONFIG GET that answers nothing (redis-benchmark asks for it before it starts). Do not serve
anything with it.

Run: ``python -m bench.minimal_server PORT``; it prints ``[LISTENING] HOST:PORT`` like catlog.
"""

from __future__ import annotations

import asyncio
import sys

_data: dict[bytes, bytes] = {}


class _Minimal(asyncio.Protocol):
    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        out = []
        end = len(buf)
        while pos < end:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            count = int(buf[pos + 1 : line_end])
            args = []
            cursor = line_end + 2
            for _ in range(count):
                size_end = buf.find(b"\r\n", cursor)
                if size_end < 0:
                    break
                size = int(buf[cursor + 1 : size_end])
                start = size_end + 2
                if start + size + 2 > end:
                    break
                args.append(buf[start : start + size])
                cursor = start + size + 2
            if len(args) < count:
                break
            pos = cursor
            name = args[0].upper()
            if name == b"SET":
                _data[args[1]] = args[2]
                out.append(b"+OK\r\n")
            elif name == b"GET":
                value = _data.get(args[1])
                out.append(b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value))
            elif name == b"PING":
                out.append(b"+PONG\r\n")
            else:
                out.append(b"*0\r\n")
        self._buf = buf[pos:]
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


async def _main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Minimal, "127.0.0.1", port)
    host, real_port = server.sockets[0].getsockname()[:2]
    print(f"[LISTENING] {host}:{real_port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
