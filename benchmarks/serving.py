"""Serving: wire overhead of msgpack vs the authors' JSON, and throughput with and without batching.

1. Per-request overhead, model excluded: a client encodes 3 RGB images of 448x448 (+ state, prompt), sends
   them over a loopback websocket, and the server decodes them into a request (`wire.parse`) and replies
   "ok". msgpack with raw arrays vs the authors' nested-list JSON (BGR, `.tolist()`).
   Floor: msgpack moves the 1.8 MB of pixels as bytes (memcpy-bound, ~1 ms); JSON writes and parses
   each of 1.8 M numbers as text (~9.5 MB).
2. Requests/s of `evo1 serve` on the tiny model (112 px, H=50, 10 flow steps here) with 1, 4 and 16
   concurrent clients, each sending 3 requests back to back, with batching (up to 16 requests per forward
   pass) and without (one per pass).

    python benchmarks/serving.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import threading
import time

import numpy as np
from websockets.asyncio.server import serve
from websockets.sync.client import connect

from evo1cli.client import wire
from evo1cli.client.remote import PolicyClient
from evo1cli.model.config import Evo1Config
from evo1cli.model.normalization import NormStats, StatsTable
from evo1cli.model.policy import Evo1Model
from evo1cli.serving.server import PolicyServer, ServeOptions


def in_thread(coroutine_factory) -> tuple[int, asyncio.AbstractEventLoop, threading.Thread]:
    ready, box = threading.Event(), {}
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(coroutine_factory(lambda port: (box.update(port=port), ready.set())))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(60)
    return box["port"], loop, thread


async def parse_only_server(ready) -> None:
    async def handler(ws) -> None:
        async for frame in ws:
            wire.parse(frame)
            await ws.send(b"ok")

    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        ready(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


def wire_overhead(repeats: int) -> dict[str, float]:
    port, loop, thread = in_thread(parse_only_server)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (448, 448, 3), dtype=np.uint8) for _ in range(3)]
    state = np.zeros(8, np.float32)
    encoders = {
        "msgpack": lambda: wire.pack({"images": images, "state": state, "prompt": "Reach a goal position"}),
        "authors JSON": lambda: json.dumps(
            {
                "image": [img[:, :, ::-1].tolist() for img in images],
                "image_mask": [1, 1, 1],
                "state": state.tolist(),
                "prompt": "Reach a goal position",
                "action_mask": [1] * 4 + [0] * 20,
            }
        ),
    }
    out = {}
    with connect(f"ws://127.0.0.1:{port}", max_size=None, compression=None) as ws:
        for name, encode in encoders.items():
            times = []
            for _ in range(repeats if name == "msgpack" else max(3, repeats // 5)):
                start = time.perf_counter()
                ws.send(encode())
                ws.recv()
                times.append(time.perf_counter() - start)
            out[name] = statistics.median(times) * 1000
            print(f"{name:14s} {len(encode()) / 2**20:6.2f} MB  {out[name]:8.1f} ms per request (median)", flush=True)
    stop(loop, thread)
    return out


def stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    for task in asyncio.all_tasks(loop):
        loop.call_soon_threadsafe(task.cancel)
    thread.join(30)


def throughput(policy: Evo1Model, clients: int, batching: bool, per_client: int = 3) -> float:
    options = ServeOptions(port=0, max_batch=16 if batching else 1, batch_window_s=0.01 if batching else 0.0)
    server = PolicyServer(policy, options)
    port, loop, thread = in_thread(server.serve_forever)
    url = f"ws://127.0.0.1:{port}"
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    connections = [PolicyClient(url) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def work(client: PolicyClient) -> None:
        barrier.wait()
        for _ in range(per_client):
            client.infer([image], np.zeros(8), "Reach a goal position")

    threads = [threading.Thread(target=work, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    rate = clients * per_client / (time.perf_counter() - start)
    for c in connections:
        c.close()
    stop(loop, thread)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    overhead = wire_overhead(args.repeats)
    config = Evo1Config.preset("tiny", num_inference_steps=10)
    stats = StatsTable()
    stats.add("metaworld", "mt50", NormStats.identity(8, 4))
    policy = Evo1Model.build(config, stats=stats).eval()
    rates = {}
    for clients in (1, 4, 16):
        for batching in (False, True):
            rates[clients, batching] = throughput(policy, clients, batching)
            label = f"{clients:2d} clients, {'batched' if batching else 'one per pass'}"
            print(f"{label:28s} {rates[clients, batching]:6.2f} requests/s", flush=True)
    for clients in (4, 16):
        print(f"batching speed-up at {clients} clients: {rates[clients, True] / rates[clients, False]:.2f}x")
    print(f"wire overhead ratio, authors' JSON / msgpack: {overhead['authors JSON'] / overhead['msgpack']:.0f}x")


if __name__ == "__main__":
    main()
