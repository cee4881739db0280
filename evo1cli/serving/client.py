"""A light client for `evo1 serve`: needs only numpy, msgpack and websockets (no torch).

client = PolicyClient("ws://127.0.0.1:9000", token=None)      # retries until the server is up
chunk = client.infer([rgb], state, "Press a button")          # (H, action dims) float32
run = ChunkExecutor(client, execute=15)                       # one action per control tick
action = run.act([rgb], state, "Press a button")              # re-queries when 15 are used
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from . import wire  # relative: `evo1 bench robotwin --export-plugin` ships this package as-is


class ServerError(Exception):
    """The server refused a request; `field` names what was wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PolicyClient:
    def __init__(
        self,
        url: str = "ws://127.0.0.1:9000",
        token: str | None = None,
        retries: int = 30,
        retry_delay_s: float = 0.5,
        timeout_s: float = 300.0,
    ):
        headers = {"Authorization": f"Bearer {token}"} if token else None
        last: Exception | None = None
        self._stack = contextlib.ExitStack()
        for attempt in range(retries + 1):
            try:
                self._ws: ClientConnection = self._stack.enter_context(
                    connect(
                        url,
                        subprotocols=[wire.SUBPROTOCOL],  # type: ignore[list-item]
                        additional_headers=headers,
                        max_size=None,
                        compression=None,
                        open_timeout=timeout_s,
                    )
                )
                break
            except InvalidStatus as err:  # refused (e.g. 401): retrying will not help
                raise ServerError("connection", f"HTTP {err.response.status_code}: {err.response.body!r}") from None
            except (OSError, WebSocketException, TimeoutError) as err:
                last = err
                if attempt < retries:
                    time.sleep(retry_delay_s)
        else:
            raise ConnectionError(f"cannot reach {url} after {retries + 1} attempts: {last}")
        self.timeout_s = timeout_s
        self.metadata: dict[str, Any] = wire.unpack(self._ws.recv(timeout=timeout_s))

    def infer(
        self,
        images: Sequence[np.ndarray | None],
        state: np.ndarray | Sequence[float],
        prompt: str,
        embodiment: str | None = None,
        dataset: str | None = None,
    ) -> np.ndarray:
        """One action chunk (H, action dims) for raw RGB uint8 images and the native state."""
        reply = self.request(
            {
                "images": list(images),
                "state": np.asarray(state, dtype=np.float32),
                "prompt": prompt,
                "embodiment": embodiment,
                "dataset": dataset,
            }
        )
        self.last_timing = reply.get("server_timing", {})
        return reply["actions"]

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self._ws.send(wire.pack({k: v for k, v in message.items() if v is not None}))
        reply = wire.unpack(self._ws.recv(timeout=self.timeout_s))
        if "error" in reply:
            raise ServerError(reply["error"].get("field", "?"), reply["error"].get("message", "?"))
        return reply

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ChunkExecutor:
    """Hands out one action per control tick from the current chunk; asks for a new chunk when
    `execute` actions of it have been used (default: the whole chunk)."""

    def __init__(self, client: PolicyClient, execute: int | None = None, **keys: str | None):
        self.client = client
        self.execute = execute
        self.keys = keys
        self._chunk: np.ndarray | None = None
        self._next = 0

    def reset(self) -> None:
        self._chunk, self._next = None, 0

    def act(self, images: Sequence[np.ndarray | None], state: np.ndarray | Sequence[float], prompt: str) -> np.ndarray:
        limit = self.execute if self.execute is not None else (len(self._chunk) if self._chunk is not None else 0)
        if self._chunk is None or self._next >= min(limit, len(self._chunk)):
            self._chunk = self.client.infer(images, state, prompt, **self.keys)
            self._next = 0
        action = self._chunk[self._next]
        self._next += 1
        return action
