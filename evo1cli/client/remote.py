"""The websocket client of `evo1 serve`: needs only numpy, msgpack and websockets (no torch).

client = PolicyClient(wire.DEFAULT_URL, token=None)           # retries until the server is up
chunk = client.infer([rgb], state, "Press a button")          # (H, action dims) float32
run = ChunkExecutor(client, execute=15)                       # one action per control tick
action = run.act([rgb], state, "Press a button")              # re-queries when 15 are used
policy = RemotePolicy(client)                                 # the policy interface (chunks.Policy)

Every request carries an id and its reply must echo it (a reply without it, or with another, is refused:
field "id"). A request that times out closes the connection
(the next request opens a new one), so a late reply can never be taken for the answer to a newer request.
Keep-alive pings are off by default: a long inference on a busy server must not look like a dead peer.
Failures raise `wire.RequestError(field, message)`: the server's error replies, and "connection" (cannot
reach it, or it refused the handshake) and "timeout".
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
from websockets.sync.client import ClientConnection, connect

from . import wire  # relative: `evo1 bench robotwin --export-plugin` ships this package as-is
from .broker import ChunkBroker
from .chunks import Query

RequestError = wire.RequestError


class PolicyClient:
    def __init__(
        self,
        url: str = wire.DEFAULT_URL,
        token: str | None = None,
        retries: int = 30,
        retry_delay_s: float = 0.5,
        timeout_s: float = 300.0,
        ping_interval_s: float | None = None,
    ):
        self.url = url
        self.timeout_s = timeout_s
        self.retries, self.retry_delay_s = retries, retry_delay_s
        self.ping_interval_s = ping_interval_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()  # the open connection, as websockets wants it: a context
        self.metadata: dict[str, Any] = {}
        self.last_timing: dict[str, Any] = {}
        self._connect()

    def _connect(self) -> None:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                ws = self._stack.enter_context(
                    connect(
                        self.url,
                        subprotocols=[wire.SUBPROTOCOL],  # type: ignore[list-item]
                        additional_headers=self._headers,
                        max_size=None,
                        compression=None,
                        open_timeout=self.timeout_s,
                        ping_interval=self.ping_interval_s,
                        ping_timeout=self.ping_interval_s,
                    )
                )
                break
            except InvalidURI as err:
                raise RequestError("connection", f"{self.url} is not a websocket URL ({err})") from None
            except InvalidStatus as err:  # refused (e.g. 401): retrying will not help
                raise RequestError(
                    "connection", f"{self.url} refused: HTTP {err.response.status_code} {err.response.body!r}"
                ) from None
            except (OSError, WebSocketException, TimeoutError) as err:
                last = err
                if attempt < self.retries:
                    time.sleep(self.retry_delay_s)
        else:
            raise RequestError("connection", f"cannot reach {self.url} after {self.retries + 1} attempts ({last})")
        try:
            self.metadata = wire.unpack(ws.recv(timeout=self.timeout_s))
        except (TimeoutError, WebSocketException, OSError) as err:
            self._drop()
            raise RequestError("connection", f"{self.url} sent no metadata ({type(err).__name__})") from None
        self._ws = ws

    def infer(
        self,
        images: Sequence[np.ndarray | None],
        state: np.ndarray | Sequence[float],
        prompt: str,
        embodiment: str | None = None,
        dataset: str | None = None,
        seed: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """One action chunk (H, action dims) for raw RGB uint8 images and the native state."""
        reply = self.request(
            {
                "images": list(images),
                "state": np.asarray(state, dtype=np.float32),
                "prompt": prompt,
                "embodiment": embodiment,
                "dataset": dataset,
                "seed": None if seed is None else list(seed),
            }
        )
        self.last_timing = reply.get("server_timing", {})
        return reply["actions"]

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its reply (matched by id); a timeout closes the connection."""
        if self._ws is None:
            self._connect()
        assert self._ws is not None
        request_id = next(self._ids)
        try:
            self._ws.send(wire.pack({**{k: v for k, v in message.items() if v is not None}, "id": request_id}))
            reply = wire.unpack(self._ws.recv(timeout=self.timeout_s))
        except TimeoutError:
            self._drop()
            raise RequestError("timeout", f"no reply from {self.url} within {self.timeout_s:g} s") from None
        except (WebSocketException, OSError) as err:
            self._drop()
            raise RequestError("connection", f"lost {self.url} ({type(err).__name__}: {err})") from None
        if "id" not in reply:  # the protocol: a reply echoes its request's id
            self._drop()
            raise RequestError("id", f"{self.url} sent a reply without the id of request {request_id}")
        if reply["id"] != request_id:
            self._drop()
            raise RequestError("id", f"the reply answers request {reply['id']!r}, not {request_id}")
        if "error" in reply:
            raise RequestError(reply["error"].get("field", "?"), reply["error"].get("message", "?"))
        return reply

    def _drop(self) -> None:
        """Close the connection: whatever the server still sends on it is never read."""
        self._ws = None
        with contextlib.suppress(Exception):
            self._stack.close()

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class RemotePolicy:
    """`evo1 serve` behind the policy interface: one request per query, in order (the server batches
    requests from several clients). Queries without stats keys use `embodiment` / `dataset`."""

    def __init__(self, client: PolicyClient, embodiment: str | None = None, dataset: str | None = None):
        self.client = client
        self.embodiment, self.dataset = embodiment, dataset

    @property
    def metadata(self) -> dict[str, Any]:
        """What the server sent on connect."""
        return self.client.metadata

    def infer(self, queries: Sequence[Query]) -> list[np.ndarray]:
        return [
            np.asarray(
                self.client.infer(
                    q.images,
                    q.state,
                    q.prompt,
                    q.embodiment or self.embodiment,
                    q.dataset or self.dataset,
                    None if q.seed is None else (q.seed, q.index),
                )
            )
            for q in queries
        ]

    def close(self) -> None:
        self.client.close()


class ChunkExecutor:
    """Hands out one action per control tick from the current chunk; asks for a new chunk when
    `execute` actions of it have been used (default: the whole chunk)."""

    def __init__(self, client: PolicyClient, execute: int | None = None, **keys: str | None):
        self.policy = RemotePolicy(client, keys.get("embodiment"), keys.get("dataset"))
        self.broker = ChunkBroker(self.policy, execute)

    def reset(self) -> None:
        self.broker.reset()

    def act(self, images: Sequence[np.ndarray | None], state: np.ndarray | Sequence[float], prompt: str) -> np.ndarray:
        action = self.broker.act(lambda: Query(images, state, prompt))
        assert action is not None  # a synchronous broker without a stop always answers
        return action
