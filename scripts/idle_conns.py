#!/usr/bin/env python3
"""Idle TLS connections for scripts/idle-memory.sh: opens connections to a TLS listener in
stages, completes each TLS handshake, then sends nothing. After each stage it writes
DIR/at-N (N connections up and idle) and waits for DIR/go-N before the next stage; after the
last it waits for DIR/go-N too, then closes everything. A connection the server closes, or a
handshake that fails, ends the run with a one-line error (exit 1).

  idle_conns.py HOST PORT CA_FILE DIR N1[,N2...]
"""
import asyncio
import os
import ssl
import sys

HOST, PORT, CA, DIR = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
STAGES = [int(n) for n in sys.argv[5].split(",")]
CONCURRENT = 200


async def wait_for(path):
    while not os.path.exists(path):
        await asyncio.sleep(0.2)


async def main():
    ctx = ssl.create_default_context(cafile=CA)
    gate = asyncio.Semaphore(CONCURRENT)
    held = []

    async def one():
        async with gate:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, PORT, ssl=ctx, server_hostname="localhost"), 30)
            held.append((reader, writer))

    for n in STAGES:
        results = await asyncio.gather(*(one() for _ in range(n - len(held))), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            sys.exit(f"idle_conns.py: {len(failed)} of {len(results)} connections failed: {failed[0]!r}")
        await asyncio.sleep(2)
        closed = sum(1 for r, _ in held if r.at_eof())
        if closed:
            sys.exit(f"idle_conns.py: the server closed {closed} idle connections")
        open(os.path.join(DIR, f"at-{n}"), "w").write(f"{len(held)}\n")
        await wait_for(os.path.join(DIR, f"go-{n}"))
    for _, w in held:
        w.close()


asyncio.run(main())
