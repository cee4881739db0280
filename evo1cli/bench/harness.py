"""The benchmark harness: K worker processes step simulators, one process runs the policy, batched.

    main process                                  worker k (one task at a time, all its episodes)
      policy.infer(all waiting queries)        <-- ("query", images, state, prompt, seed, index)
      --> chunk                                    executes `action_steps` of it (a `ChunkBroker`
                                                   over the pipe), or stops on done
                                              <-- ("episode", record), ("task", name) when finished

A worker renders only when the policy needs an image, and every frame only for the episodes it films.
A suite supplies the environments (`Suite.episodes(task, protocol)` in suites.py yields each episode's
environment, reset and ready); the harness is the same for every suite. The policy is any
`chunks.Policy`; a query's noise is keyed by (episode seed, query index), so a rerun repeats it. With
`policy=None` the environment's own scripted expert acts (`env.expert_action()`), one action per step,
through the same loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evo1cli.client.broker import ChunkBroker
from evo1cli.client.chunks import Policy, Query
from evo1cli.errors import Evo1Error


class BenchEnv(Protocol):
    task: str
    prompt: str
    max_steps: int

    def observation(self) -> tuple[list[np.ndarray], np.ndarray]: ...  # views (RGB uint8), native state
    def step(self, action: np.ndarray) -> tuple[bool, bool]: ...  # (success, done)
    def frame(self) -> np.ndarray: ...  # what a video shows
    def expert_action(self) -> np.ndarray: ...


@dataclass
class EpisodeRecord:
    task: str
    episode: int
    seed: int
    success: bool
    steps: int
    queries: int
    seconds: float
    video: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # suite details (e.g. the Meta-World variation)


@dataclass(frozen=True)
class BenchProtocol:
    """How a suite's episodes run: a suite's `PROTOCOL` holds its defaults, a run changes some (`replace`),
    and the workers get it (picklable).

    `options` are the suite's own settings (Meta-World's `variations`, LIBERO's `settle_steps`, ...), written
    into the report with the fields; they read as attributes too: `protocol.settle_steps`.
    """

    suite: str  # its name in the registry (suites.py)
    episodes: int  # per task
    seed: int  # episode k uses seed + k
    action_steps: int  # actions executed per chunk
    image_size: int = 448  # what the environments render for the policy (its own size; 448 for the experts)
    videos: int = 1  # episodes filmed per task (the first ones)
    max_steps: int | None = None  # steps per episode at most; None: each task's own budget
    video_dir: str | None = None  # where the videos go
    options: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(f"{self.__dict__.get('suite')!r} protocol has no field or option {name!r}")

    def replace(self, **changes: Any) -> BenchProtocol:
        """This protocol with `changes`: fields by their names, anything else an option (added if new)."""
        names = {f.name for f in fields(self)}
        options = {**self.options, **{k: v for k, v in changes.items() if k not in names}}
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if k in names}, options=options)


EpisodeFactory = Callable[[str, BenchProtocol], Iterator[tuple[int, int, BenchEnv, dict[str, Any]]]]
"""(task, protocol) -> each episode's (index, seed, ready environment, extra) in order."""


def _worker(conn: Connection, factory: EpisodeFactory, protocol: BenchProtocol, expert: bool) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the run
    try:
        while True:
            message = conn.recv()
            if message is None:
                return
            task = message
            for episode, seed, env, extra in factory(task, protocol):
                record = _run_episode(conn, env, episode, seed, protocol, expert, extra)
                conn.send(("episode", record))
            conn.send(("task", task))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    except Exception as err:
        conn.send(("error", f"{type(err).__name__}: {err}", traceback.format_exc()))


class _Pipe:
    """The main process's policy, asked over this worker's pipe (it batches the queries of all workers)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.metadata: dict[str, Any] = {}

    def infer(self, queries: list[Query]) -> list[np.ndarray]:
        (q,) = queries
        self.conn.send(("query", q.images, q.state, q.prompt, q.seed, q.index))
        return [np.asarray(self.conn.recv())]

    def close(self) -> None:
        pass


class _Expert:
    """The environment's scripted expert as a policy: one action per query, from the simulator's state."""

    def __init__(self, env: BenchEnv):
        self.env = env
        self.metadata: dict[str, Any] = {"policy": "expert"}

    def infer(self, queries: list[Query]) -> list[np.ndarray]:
        return [np.asarray([self.env.expert_action()])]

    def close(self) -> None:
        pass


def _run_episode(
    conn: Connection, env: BenchEnv, episode: int, seed: int, protocol: BenchProtocol, expert: bool, extra: dict
) -> EpisodeRecord:
    start = time.perf_counter()
    budget = protocol.max_steps or env.max_steps
    filming = protocol.video_dir is not None and episode < protocol.videos
    frames: list[np.ndarray] = [env.frame()] if filming else []
    success, steps, done = False, 0, False
    broker = ChunkBroker(_Expert(env) if expert else _Pipe(conn), protocol.action_steps)

    def observe() -> Query:  # called only when a query goes out: the environment renders only then
        if expert:
            return Query([], (), env.prompt)  # the expert reads the simulator, not an observation
        images, state = env.observation()
        return Query(images, state, env.prompt, seed=seed, index=broker.queue.chunks)

    while not done and steps < budget:
        success, done = env.step(np.asarray(broker.act(observe)))
        steps += 1
        if filming:
            frames.append(env.frame())
    queries = broker.queue.chunks
    video = None
    if filming and protocol.video_dir:
        video = str(Path(protocol.video_dir) / f"{env.task}_ep{episode:02d}.mp4")
        write_mp4(video, frames)
    return EpisodeRecord(env.task, episode, seed, success, steps, queries, time.perf_counter() - start, video, extra)


def write_mp4(path: str | Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """H.264 (yuv420p) so that browsers play it; written to a temporary name, then renamed."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    h, w = frames[0].shape[:2]
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            image = np.ascontiguousarray(frame[: stream.height, : stream.width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)


def run_benchmark(
    tasks: list[str],
    factory: EpisodeFactory,
    protocol: BenchProtocol,
    policy: Policy | None,
    workers: int = 1,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
    batch_window_s: float = 0.005,
) -> list[EpisodeRecord]:
    """Every episode of every task; `policy=None` runs the environments' experts."""
    if workers < 1:
        raise Evo1Error("must be >= 1", field="--workers")
    context = mp.get_context("spawn")  # simulators and renderers are not fork-safe
    pending_tasks = list(tasks)
    links: list[Connection] = []
    procs = []
    for _ in range(min(workers, len(tasks))):
        parent, child = context.Pipe()
        proc = context.Process(target=_worker, args=(child, factory, protocol, policy is None), daemon=True)
        proc.start()
        child.close()
        links.append(parent)
        procs.append(proc)
    records: list[EpisodeRecord] = []
    busy: set[Connection] = set()
    try:
        for link in links:
            if pending_tasks:
                link.send(pending_tasks.pop(0))
                busy.add(link)
        waiting: dict[Connection, Query] = {}
        while busy:
            ready = wait(list(busy - set(waiting)), timeout=None if not waiting else batch_window_s)
            for link in ready:
                message = link.recv()
                kind = message[0]
                if kind == "query":
                    images, state, prompt, seed, index = message[1:]
                    waiting[link] = Query(images, state, prompt, seed=seed, index=index)
                elif kind == "episode":
                    records.append(message[1])
                    if on_episode:
                        on_episode(message[1])
                elif kind == "task":
                    if pending_tasks:
                        link.send(pending_tasks.pop(0))
                    else:
                        busy.discard(link)
                else:
                    raise Evo1Error(f"a simulation worker failed: {message[1]}")
            if waiting and (not ready or len(waiting) == len(busy)):
                assert policy is not None
                order = list(waiting)
                chunks = policy.infer([waiting[link] for link in order])
                for link, chunk in zip(order, chunks, strict=True):
                    link.send(chunk)
                waiting.clear()
    finally:
        for link in links:
            with contextlib.suppress(BrokenPipeError, OSError):
                link.send(None)
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
    return records
