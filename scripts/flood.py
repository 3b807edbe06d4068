#!/usr/bin/env python3
"""Bad peers for the storm runs (scripts/storm.sh flood): COUNT connections to a TLS listener,
split evenly between three kinds, held for SECONDS, then a one-line JSON report.

  silent   completes TCP, then says nothing
  half     sends the first 64 bytes of a TLS ClientHello, then nothing
  trickle  completes the TLS handshake, then sends a REGISTER one byte a second

The registrar must close each by its deadline (handshake_timeout_s for the first two, the same
for a message begun and not finished) without slowing the devices it serves. The report says,
per kind, how many connected and how many the server closed, with the median and largest
second at which it did.

  flood.py HOST PORT COUNT SECONDS CA_FILE
"""
import asyncio
import json
import socket
import ssl
import sys
import time

HOST, PORT, COUNT, SECONDS, CA = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
REGISTER = (
    b"REGISTER sip:10.10.10.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKflood\r\n"
    b"From: <sip:9999@10.10.10.1>;tag=1\r\nTo: <sip:9999@10.10.10.1>\r\nCall-ID: flood@x\r\n"
    b"CSeq: 1 REGISTER\r\nContact: <sip:9999@127.0.0.1>\r\nContent-Length: 0\r\n\r\n"
)
start = time.monotonic()
stats = {k: {"connected": 0, "closed_by_server": 0, "closed_at_s": []} for k in ("silent", "half", "trickle")}


def client_hello() -> bytes:
    """The first bytes of a real ClientHello, from a handshake that never reaches a socket."""
    ctx = ssl.create_default_context(cafile=CA)
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()[:64]


HELLO = client_hello()


async def wait_closed(reader, kind):
    """Reads until the server closes or the time is up."""
    try:
        left = SECONDS - (time.monotonic() - start)
        while left > 0:
            data = await asyncio.wait_for(reader.read(4096), timeout=left)
            if not data:
                stats[kind]["closed_by_server"] += 1
                stats[kind]["closed_at_s"].append(round(time.monotonic() - start, 1))
                return
            left = SECONDS - (time.monotonic() - start)
    except (asyncio.TimeoutError, ConnectionError, ssl.SSLError):
        if not isinstance(sys.exc_info()[1], asyncio.TimeoutError):
            stats[kind]["closed_by_server"] += 1
            stats[kind]["closed_at_s"].append(round(time.monotonic() - start, 1))


async def silent():
    r, w = await asyncio.open_connection(HOST, PORT)
    stats["silent"]["connected"] += 1
    await wait_closed(r, "silent")
    w.close()


async def half():
    r, w = await asyncio.open_connection(HOST, PORT)
    stats["half"]["connected"] += 1
    w.write(HELLO)
    await w.drain()
    await wait_closed(r, "half")
    w.close()


async def trickle():
    ctx = ssl.create_default_context(cafile=CA)
    r, w = await asyncio.open_connection(HOST, PORT, ssl=ctx, server_hostname="localhost")
    stats["trickle"]["connected"] += 1
    reading = asyncio.ensure_future(wait_closed(r, "trickle"))
    for b in REGISTER:
        if reading.done() or time.monotonic() - start > SECONDS:
            break
        try:
            w.write(bytes([b]))
            await w.drain()
        except (ConnectionError, ssl.SSLError):
            break
        await asyncio.sleep(1.0)
    await reading
    w.close()


async def one(kind):
    try:
        await {"silent": silent, "half": half, "trickle": trickle}[kind]()
    except (OSError, ssl.SSLError, asyncio.TimeoutError):
        pass


async def main():
    kinds = ["silent", "half", "trickle"]
    tasks = []
    for i in range(COUNT):
        tasks.append(asyncio.ensure_future(one(kinds[i % 3])))
        if i % 100 == 99:
            await asyncio.sleep(0.01)  # a flood, not a single SYN burst the backlog drops
    await asyncio.gather(*tasks)


asyncio.run(main())
for k, s in stats.items():
    at = sorted(s.pop("closed_at_s"))
    s["closed_median_s"] = at[len(at) // 2] if at else None
    s["closed_last_s"] = at[-1] if at else None
print(json.dumps(stats))
