"""`PolicyServer`: a websocket policy server over one checkpoint.

    connection  GET /healthz -> 200 "ok" (plain HTTP); other paths upgrade to a websocket. With a token,
                the handshake needs `Authorization: Bearer <token>` (or `?token=<token>`), else 401.
                Clients offering the "evo1.msgpack" subprotocol first get a metadata message.
    request     one frame -> one reply, msgpack or the authors' JSON, told apart per frame (wire.py)
    inference   requests that arrive together (within `batch_window_s`, up to `max_batch`) share one
                forward pass, run in a worker thread so the event loop keeps serving; the policy is a
                `LocalPolicy` (a checkpoint on the device `evo1 serve --device/--dtype` chose)
    noise       a request's "seed" ([seed, query index]) fixes its chunk's initial noise, else `--seed`
                (the same for every request), else fresh noise (`evo1cli.runtime.policy.chunk_noise`)
    keep-alive  pings off by default (a long inference must not look like a dead peer); `ping_interval_s`
                turns them on to find vanished clients
    errors      a bad frame gets an error reply naming the field; the connection and the server go on

The server turns raw observations into executable actions: normalisation, padding, cropping and (for
checkpoints trained on relative actions) adding the state back all happen in `Evo1Model.predict`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response

from evo1cli.client import wire
from evo1cli.client.chunks import Query
from evo1cli.errors import Evo1Error
from evo1cli.model.policy import Evo1Model
from evo1cli.runtime.policy import LocalPolicy, describe

log = logging.getLogger("evo1.serve")


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 9000
    token: str | None = None
    max_message_bytes: int = 32 * 2**20  # 3 raw 448 px images are 1.8 MB; the authors' JSON ~9.5 MB
    max_batch: int = 16
    batch_window_s: float = 0.005
    seed: int | None = None  # fixed initial noise per request: identical replies to identical requests
    ping_interval_s: float | None = None  # keep-alive pings (and their timeout); None: off


@dataclass
class _Job:
    query: Query
    future: asyncio.Future = field(repr=False)


@dataclass
class ServerStats:
    requests: int = 0
    errors: int = 0
    batches: list[int] = field(default_factory=list)  # size of each forward pass


class PolicyServer:
    def __init__(self, policy: LocalPolicy | Evo1Model, options: ServeOptions | None = None):
        self.local = LocalPolicy(policy) if isinstance(policy, Evo1Model) else policy
        self.policy = self.local.model  # its config and stats describe what the server accepts
        self.options = options or ServeOptions()
        self.stats = ServerStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evo1-infer")
        self._queue: asyncio.Queue[_Job] | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ description
    def metadata(self) -> dict[str, Any]:
        return {
            "type": "metadata",
            **describe(self.policy),
            "images": {"dtype": "uint8", "layout": "HxWx3 RGB", "max_side": wire.MAX_SIDE, "any_size": True},
            "protocols": [wire.MSGPACK, wire.AUTHORS],
            "max_message_bytes": self.options.max_message_bytes,
        }

    # ------------------------------------------------------------------ lifecycle
    async def serve_forever(self, ready: Callable[[int], None] | None = None) -> None:
        self._queue = asyncio.Queue()
        batcher = asyncio.create_task(self._batch_loop())
        async with serve(
            self._handle,
            self.options.host,
            self.options.port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            max_size=2 * self.options.max_message_bytes,  # larger frames close the connection (1009)
            compression=None,
            ping_interval=self.options.ping_interval_s,
            ping_timeout=self.options.ping_interval_s,
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            if ready:
                ready(self.port)
            try:
                await asyncio.Future()  # until cancelled
            finally:
                batcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await batcher
                self._executor.shutdown(wait=False)

    def _process_request(self, connection: ServerConnection, request: HttpRequest) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        token = self.options.token
        if token is not None:
            header = request.headers.get("Authorization", "")
            given = header.removeprefix("Bearer ").strip() if header else parse_qs(url.query).get("token", [""])[0]
            if given != token:
                return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid token is required\n")
        return None

    # ------------------------------------------------------------------ connections
    async def _handle(self, connection: ServerConnection) -> None:
        if connection.subprotocol == wire.SUBPROTOCOL:
            await connection.send(wire.pack(self.metadata()))
        with contextlib.suppress(ConnectionClosed):  # a client that timed out has gone: its reply is dropped
            async for frame in connection:
                await connection.send(await self.answer(frame))

    async def answer(self, frame: bytes | str) -> bytes | str:
        """The reply to one frame (never raises: bad input becomes an error reply)."""
        start = time.perf_counter()
        protocol = wire.MSGPACK if isinstance(frame, bytes) else wire.AUTHORS
        self.stats.requests += 1
        request_id = None
        try:
            if len(frame) > self.options.max_message_bytes:
                raise wire.RequestError("message", f"{len(frame)} bytes, more than the limit of "
                                        f"{self.options.max_message_bytes}")  # fmt: skip
            request = wire.parse(frame)
            request_id = request.id
            actions, infer_ms, batch = await self._infer(self._query(request))
        except wire.RequestError as err:
            self.stats.errors += 1
            request_id = err.request_id if request_id is None else request_id  # refused while parsing: its own id
            return wire.error_reply(protocol, err.field, err.message, request_id)
        except Evo1Error as err:
            self.stats.errors += 1
            return wire.error_reply(protocol, err.field or "request", err.message, request_id)
        except Exception as err:  # a bug must not take the server down; say what happened
            log.exception("inference failed")
            self.stats.errors += 1
            return wire.error_reply(protocol, "server", f"{type(err).__name__}: {err}", request_id)
        timing = {"infer_ms": infer_ms, "total_ms": (time.perf_counter() - start) * 1000, "batch_size": batch}
        return wire.reply(request, actions, timing, pad_to=self.policy.config.action_dim)  # authors' JSON: padded

    def _query(self, request: wire.Request) -> Query:
        if len(request.images) > self.policy.config.num_views:
            raise wire.RequestError("images", f"the model has {self.policy.config.num_views} view slots")
        field = "arm_key/dataset_key" if request.protocol == wire.AUTHORS else "embodiment/dataset"
        try:
            key = self.policy.stats.key(request.embodiment, request.dataset)
        except Evo1Error as err:
            raise wire.RequestError(field, err.message) from None
        state = wire.crop_padded_state(request.state, self.policy.stats.entries[key].state.dim)
        seed, index = request.seed or (self.options.seed, 0)
        return Query(request.images, state, request.prompt, key[0], key[1], seed, index)

    # ------------------------------------------------------------------ batching
    async def _infer(self, query: Query) -> tuple[np.ndarray, float, int]:
        assert self._queue is not None, "serve_forever() is not running"
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(query, future))
        return await future

    async def _batch_loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            deadline = loop.time() + self.options.batch_window_s
            while len(jobs) < self.options.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            results = await loop.run_in_executor(self._executor, self._predict, jobs)
            for job, result in zip(jobs, results, strict=True):
                if not job.future.done():
                    if isinstance(result, BaseException):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)

    def _predict(self, jobs: list[_Job]) -> list[tuple[np.ndarray, float, int] | BaseException]:
        """One forward pass for the batch; if it fails, each job alone, so only a bad one gets the error."""
        try:
            start = time.perf_counter()
            chunks = self.local.infer([j.query for j in jobs])
            infer_ms = (time.perf_counter() - start) * 1000
            self.stats.batches.append(len(jobs))
            return [(chunk, infer_ms, len(jobs)) for chunk in chunks]
        except Exception as err:
            if len(jobs) == 1:
                return [err]
            return [self._predict([job])[0] for job in jobs]


def _select_subprotocol(connection: ServerConnection, subprotocols: list[str]) -> str | None:
    return wire.SUBPROTOCOL if wire.SUBPROTOCOL in subprotocols else None


def run_server(policy: LocalPolicy, options: ServeOptions, ready: Callable[[int], None] | None = None) -> None:
    """Serve until Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(PolicyServer(policy, options).serve_forever(ready))
