"""A TCP proxy between the service and TimescaleDB, to cut the network (a real fault, not a test double).

Plain asyncio socket forwarding in a thread of the test process: the service
connects to ``127.0.0.1:<proxy port>``; :meth:`Proxy.cut` closes every open
connection and stops listening (new connections are refused, exactly as with
a stopped database), :meth:`Proxy.restore` listens again on the same port;
:meth:`Proxy.stall` keeps the connections open but forwards nothing (a host that
stopped answering), :meth:`Proxy.flow` forwards again.
"""

import asyncio
import os
import threading
from pathlib import Path


class Proxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None
        self.writers = set()
        self.flowing = self.call(self._event())  # cleared by stall(): bytes are held, connections stay open
        self.port = self.call(self.listen(0))

    def call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _event(self):
        event = asyncio.Event()
        event.set()
        return event

    async def listen(self, port):
        self.server = await asyncio.start_server(self.forward, "127.0.0.1", port, reuse_address=True)
        return self.server.sockets[0].getsockname()[1]

    async def forward(self, client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self.writers |= {client_writer, server_writer}

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    await self.flowing.wait()
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        self.writers -= {client_writer, server_writer}

    async def _cut(self):
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()  # the connection is gone, as when the database host is
        self.writers.clear()
        await self.server.wait_closed()

    def cut(self):
        """Close every connection and refuse new ones."""
        self.call(self._cut())

    def stall(self):
        """Stop forwarding, connections kept open: the database host stops answering (a partition, a hung server)."""
        self.loop.call_soon_threadsafe(self.flowing.clear)

    def flow(self):
        """Forward again what :meth:`stall` held, and what follows."""
        self.loop.call_soon_threadsafe(self.flowing.set)

    def restore(self):
        """Accept connections again on the same port."""
        self.call(self.listen(self.port))

    def close(self):
        self.call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)


def pgpass_with_port(path, port, original_port):
    """Write ``path``: the lines of the current password file plus a copy of those of ``original_port`` for ``port``.

    The service then authenticates through the proxy exactly as it does directly
    (scripts/tsdb keeps the passwords in ~/.pgpass or $PGPASSFILE, never in URLs).
    """
    source = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    lines = source.read_text().splitlines()
    copies = [line.replace(f":{original_port}:", f":{port}:", 1) for line in lines
              if line.split(":")[1:2] == [str(original_port)]]
    Path(path).write_text("\n".join(lines + copies) + "\n")
    os.chmod(path, 0o600)
    return str(path)
