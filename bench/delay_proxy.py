#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a fixed time in each direction,
as a network between mcpd and its storage would (bench/cache.sh uses it
where tc netem is not available). Order and throughput are kept: each
chunk is forwarded DELAY after it arrived, whatever is in flight.

  delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS"""

import asyncio
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    last = 0.0
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            # Never before an earlier chunk: the order is the stream's.
            last = max(loop.time() + delay, last)
            loop.call_at(last, writer.write, data)
    except (ConnectionError, OSError):
        pass
    loop.call_at(last, writer.close)


async def main():
    listen, target, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000

    async def accept(cr, cw):
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, sw, delay), pipe(sr, cw, delay))

    server = await asyncio.start_server(accept, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


asyncio.run(main())
