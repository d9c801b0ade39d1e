"""`python -m drill.proxy LISTEN_PORT TARGET_PORT`: a TCP proxy on 127.0.0.1 that the drill
breaks on command, standing between Bastion and PostgreSQL.

Commands arrive one per line on standard input; each is answered with `ok <command>` on
standard output once in force:

- `down`: every open connection is cut (reset) and new ones are refused, as while PostgreSQL
  restarts;
- `hang`: nothing is forwarded any more and new connections are accepted but never reach the
  server, as in a network partition: clients wait rather than fail;
- `up`: back to forwarding; connections held by a partition carry on where they stopped.

It runs in a process of its own so that the load the drill generates never delays its bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys

HOST = "127.0.0.1"
CHUNK = 65536


class Proxy:
    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[None]] = set()

    async def listen(self) -> None:
        self.server = await asyncio.start_server(
            self._serve, HOST, self.listen_port, reuse_address=True
        )

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        self.flowing.set()

    async def hang(self) -> None:
        self.flowing.clear()
        if self.server is None:
            await self.listen()

    async def up(self) -> None:
        self.flowing.set()
        if self.server is None:
            await self.listen()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        server: asyncio.StreamWriter | None = None
        try:
            await self.flowing.wait()
            if client_reader.at_eof():
                # The client gave up while the partition held its connection: in a real
                # partition its handshake would never have reached the server at all.
                return
            server_reader, server = await asyncio.open_connection(HOST, self.target_port)
            await asyncio.gather(
                self._pump(client_reader, server), self._pump(server_reader, client)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections.discard(task)
            for writer in (client, server):
                if writer is not None:
                    _reset(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            await self.flowing.wait()
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a crashed or restarted server's kernel would answer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def main(listen_port: int, target_port: int) -> None:
    proxy = Proxy(listen_port, target_port)
    await proxy.listen()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _say("ready")
    commands = {"down": proxy.down, "hang": proxy.hang, "up": proxy.up}
    while line := (await reader.readline()).decode().strip():
        command = commands.get(line)
        if command is None:
            _say(f"error unknown command {line!r}")
            continue
        await command()
        _say(f"ok {line}")
    await proxy.down()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
