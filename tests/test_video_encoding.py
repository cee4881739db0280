"""Encoding a camera video leaves the calling thread as it found it.

libsvtav1 run as root puts the thread that feeds it on real-time scheduling (SCHED_FIFO, priority 99); every
thread started from it afterwards inherits that, and a robot loop or the twin's simulator then starves the rest of
the machine. CI runs as root, where this test fails without `keep_scheduling`."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from evo1cli.data.video import VideoWriter, probe

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling only")


def test_encoding_keeps_the_threads_scheduling_and_the_threads_it_starts(tmp_path):
    seen: dict[str, tuple[int, int]] = {}

    def scheduling() -> tuple[int, int]:
        return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority

    def record() -> None:  # in a thread of its own, as the recorder's commit is
        seen["before"] = scheduling()
        writer = VideoWriter(tmp_path / "v.mp4", 30, 64, 48)
        for k in range(6):
            writer.add(np.full((48, 64, 3), 40 * k, np.uint8))
        seen["while"] = scheduling()
        writer.close()
        seen["after"] = scheduling()
        child = threading.Thread(target=lambda: seen.setdefault("child", scheduling()))
        child.start()
        child.join()

    thread = threading.Thread(target=record)
    thread.start()
    thread.join()
    assert seen["before"] == (os.SCHED_OTHER, 0)
    assert seen["while"] == seen["after"] == seen["child"] == seen["before"]
    assert probe(tmp_path / "v.mp4", decode=True).frames == 6


def _read_in_child(path, queue):
    from evo1cli.data.video import read_frame_from_start

    queue.put(read_frame_from_start(path, 0.0).shape)


def test_a_forked_worker_reads_frames_after_its_parent_converted_some(tmp_path):
    # A DataLoader worker is forked; the quickstart's process has converted frames before it forks (collection,
    # the view fingerprints). With PyAV 18.1.1 the worker then waited forever for the converter's threads.
    import multiprocessing

    from evo1cli.data.video import read_frame_from_start

    path = tmp_path / "v.mp4"
    writer = VideoWriter(path, 30, 112, 112)
    for k in range(4):
        writer.add(np.full((112, 112, 3), 60 * k, dtype=np.uint8))
    writer.close()
    assert read_frame_from_start(path, 0.0).shape == (112, 112, 3)  # converted here, before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(path, queue))
    child.start()
    child.join(timeout=30)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung and queue.get(timeout=5) == (112, 112, 3)
