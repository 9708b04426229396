#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a fixed time in each direction, and optionally limits the
bandwidth of one direction shared by all its connections: a high-latency link, or a main server's
uplink to a fleet, without netem (this kernel has none).

    delay_proxy.py ONE_WAY_MS [--uplink-mbit N] LISTEN_HOST:PORT=TARGET_HOST:PORT...

Run inside a worker's namespace in front of its sshd for one worker's link; or in the main
server's namespace with one listener per worker and --uplink-mbit, so that every byte the main
server sends to any worker goes through the same limit (the client-to-target direction). A 25 ms
one-way delay gives a 50 ms round trip. Order is kept per connection.
"""
import argparse
import asyncio
import time


class Uplink:
    """A first-in first-out link of a fixed rate shared by every connection: a chunk finishes
    sending when the link has sent everything queued before it, then its own bytes."""

    def __init__(self, mbit):
        self.rate = mbit * 1_000_000 / 8
        self.free_at = 0.0

    def finish_time(self, size):
        self.free_at = max(time.monotonic(), self.free_at) + size / self.rate
        return self.free_at


async def pump(reader, writer, delay, uplink=None):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except OSError:
            pass

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            sent = uplink.finish_time(len(data)) if uplink else time.monotonic()
            queue.put_nowait((sent + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def serve(listen, target, delay, uplink):
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(thost, int(tport))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, server_writer, delay, uplink), pump(server_reader, client_writer, delay))
        for w in (client_writer, server_writer):
            w.close()

    server = await asyncio.start_server(handle, lhost, int(lport))
    async with server:
        await server.serve_forever()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("one_way_ms", type=float)
    parser.add_argument("--uplink-mbit", type=float, default=None)
    parser.add_argument("routes", nargs="+", help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args()
    uplink = Uplink(args.uplink_mbit) if args.uplink_mbit else None
    await asyncio.gather(*(serve(*route.split("=", 1), args.one_way_ms / 1000.0, uplink) for route in args.routes))


if __name__ == "__main__":
    asyncio.run(main())
