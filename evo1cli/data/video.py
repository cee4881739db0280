"""Camera videos: encoding as LeRobot does, remuxing, and random-access decoding for training.

Encoding matches LeRobot's `encode_video_frames`: AV1 (libsvtav1), yuv420p, crf 30 and a keyframe every
2 frames (g=2), frame i at time i / fps. The short GOP is what makes random access cheap: reading any
frame means seeking to the keyframe at or before it and decoding at most 2 frames.

`concat_videos` joins spans of mp4 files into one (the v3.0 layout's shared files) or cuts one out, by
copying packets: the decoded pixels stay identical, as with LeRobot's own `concatenate_video_files`.

`FrameReader` keeps the last few containers open (per process, so per DataLoader worker) and continues
decoding forward without a seek when the next request lies just ahead of the last one. A v3.0 episode's
frame t is read at its span's start + t in the shared file.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from evo1cli.errors import Evo1Error

CODEC = "libsvtav1"
PIX_FMT = "yuv420p"
GOP = 2
CRF = 30
TOLERANCE_S = 1e-4  # LeRobot's default tolerance between a requested timestamp and a frame's
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr for every file otherwise


def _av() -> Any:
    import av

    av.logging.set_level(av.logging.ERROR)
    return av


@contextlib.contextmanager
def keep_scheduling() -> Any:
    """Undo what the encoder does to the calling thread's scheduling.

    libsvtav1 run as root switches the thread that opens or feeds it to real-time scheduling (SCHED_FIFO,
    priority 99), and every thread started from it afterwards inherits that: a teleoperation or policy loop, or a
    simulator, would then starve everything else on the machine (seen as the twin's renderer stalling after the
    first saved episode). The thread's own policy and priority are put back after each call."""
    if not hasattr(os, "sched_getscheduler"):  # not Linux: nothing to undo
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy or os.sched_getparam(0) != param:
            os.sched_setscheduler(0, policy, param)


def rgb(frame: Any) -> np.ndarray:
    """A decoded frame as RGB uint8 (H, W, 3), converted on the calling thread. PyAV 18.1.1 converts on slice
    threads of a converter it keeps between calls; a DataLoader worker forked from a process that had converted
    frames (the quickstart collects, then trains) inherits that converter without its threads and waits for them
    forever."""
    return frame.to_ndarray(format="rgb24", threads=1)


class VideoWriter:
    """Streams RGB uint8 frames (H, W, 3) into an mp4 at `path` (the calling thread's scheduling kept)."""

    def __init__(self, path: str | Path, fps: int, width: int, height: int, codec: str = CODEC, crf: int = CRF):
        av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shape = (height, width, 3)
        self.frames = 0
        options = {"g": str(GOP), "crf": str(crf)} if codec == CODEC else {"g": str(GOP)}
        with keep_scheduling():
            self._container = av.open(str(self.path), "w")
            self._stream = self._container.add_stream(codec, int(fps), options=options)
            self._stream.pix_fmt = PIX_FMT
            self._stream.width, self._stream.height = width, height

    def add(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise Evo1Error(f"expected a {self.shape} uint8 frame, got {frame.shape} {frame.dtype}", path=self.path)
        video_frame = _av().VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        with keep_scheduling():
            self._container.mux(self._stream.encode(video_frame))
        self.frames += 1

    def close(self) -> None:
        with keep_scheduling():
            self._container.mux(self._stream.encode())
            self._container.close()


@dataclass
class VideoProbe:
    frames: int
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    last_time: float  # seconds, the last frame's presentation time

    def info(self) -> dict[str, Any]:
        """The `info` block LeRobot puts in a video feature (its `get_video_info`)."""
        return {
            "video.height": self.height,
            "video.width": self.width,
            "video.codec": self.codec,
            "video.pix_fmt": self.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": round(self.fps),
            "video.channels": 3,
            "has_audio": False,
        }


def probe(path: str | Path, decode: bool = False) -> VideoProbe:
    """Read a video's header (and, with `decode`, every frame). An unreadable file is an `Evo1Error`."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise Evo1Error("file not found", path=path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise Evo1Error("has no video stream", path=path)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate or Fraction(0)
            frames = stream.frames
            last = (frames - 1) / float(rate) if frames > 0 and rate else 0.0
            if decode or frames <= 0:
                frames = 0
                for frame in container.decode(stream):
                    frames += 1
                    last = float(frame.time or 0.0)
            return VideoProbe(
                frames=frames,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=float(rate),
                codec=stream.codec.canonical_name if hasattr(stream.codec, "canonical_name") else stream.codec.name,
                pix_fmt=stream.codec_context.pix_fmt or PIX_FMT,
                last_time=last,
            )
    except Evo1Error:
        raise
    except Exception as err:
        raise Evo1Error(f"cannot be decoded ({type(err).__name__}: {err})", path=path) from None


def packet_times(path: str | Path) -> tuple[np.ndarray, float]:
    """Every frame's presentation time (s, sorted) read from the container without decoding, and where the
    video ends (the last frame's time plus its duration). An unreadable file is an `Evo1Error`."""
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            base = float(stream.time_base)
            pts = [(p.pts, p.duration or 0) for p in container.demux(stream) if p.pts is not None]
    except Exception as err:
        raise Evo1Error(f"cannot be read ({type(err).__name__}: {err})", path=path) from None
    if not pts:
        return np.empty(0), 0.0
    pts.sort()
    return np.array([t for t, _ in pts]) * base, (pts[-1][0] + pts[-1][1]) * base


def video_duration(path: str | Path) -> float:
    """A video's duration as LeRobot's `get_video_duration_in_s` measures it: its stream's duration."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.duration is not None:
                return float(stream.duration * stream.time_base)
            return float(container.duration / av.time_base)
    except Exception as err:
        raise Evo1Error(f"cannot be read ({type(err).__name__}: {err})", path=path) from None


def concat_videos(segments: list[tuple[Path, float, float | None]], out: Path) -> list[tuple[float, float]]:
    """Copy the packets of spans [start, end) seconds of mp4 files (end None: to the file's end), one after
    another, into the new file `out`, without re-encoding. Returns where each span lies in `out`, [from, to)
    seconds, as LeRobot records it: from = the sum of the durations before it (a whole file's duration is its
    stream's). Each span must start on a keyframe and all files must share codec, size and time base."""
    av = _av()
    spans: list[tuple[float, float]] = []
    time, offset = 0.0, 0  # where the next span starts: seconds, and ticks of the shared time base
    output = av.open(str(out), "w", format="mp4", options={"movflags": "faststart"})
    target, path = None, out
    try:
        for path, start, end in segments:
            if not Path(path).is_file():
                raise Evo1Error("file not found", path=path)
            with av.open(str(path)) as source:
                stream = source.streams.video[0]
                if target is None:
                    target = output.add_stream_from_template(stream, opaque=True)
                    target.time_base = stream.time_base
                    shape = (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height)
                    base = stream.time_base
                elif (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height) != shape:
                    raise Evo1Error(
                        f"cannot be joined to {segments[0][0]} without re-encoding: codec or size differ", path=path
                    )
                elif stream.time_base != base:
                    raise Evo1Error(f"time base {stream.time_base} differs from {segments[0][0]}'s {base}", path=path)
                slack = max(1, round(TOLERANCE_S / base))
                first = round(start / base)
                last = None if end is None else round(end / base)
                begin = stop = None
                for packet in source.demux(stream):
                    if packet.pts is None or packet.dts is None or packet.pts < first - slack:
                        continue
                    if last is not None and packet.pts >= last - slack:
                        continue  # past the span (packets come in decoding order: keep reading)
                    if begin is None:
                        if not packet.is_keyframe:
                            raise Evo1Error(
                                f"the span from {start:.4f} s does not start on a keyframe: it cannot "
                                "be cut out without re-encoding",
                                path=path,
                            )
                        begin = packet.pts
                    stop = max(stop or 0, packet.pts + (packet.duration or 0))
                    packet.pts, packet.dts = packet.pts - begin + offset, packet.dts - begin + offset
                    packet.stream = target
                    output.mux(packet)
                if begin is None:
                    raise Evo1Error(f"no frames in [{start:.4f}, {end if end is None else f'{end:.4f}'}) s", path=path)
                if last is not None:
                    ticks = last - first
                elif begin == 0 and stream.duration:
                    ticks = stream.duration
                else:
                    ticks = stop - begin
            seconds = float(ticks * base)
            spans.append((time, time + seconds))
            time, offset = time + seconds, offset + ticks
    except BaseException as err:
        with contextlib.suppress(Exception):  # the half-written file is the caller's to throw away
            output.close()
        if isinstance(err, Exception) and not isinstance(err, Evo1Error):
            raise Evo1Error(f"cannot be remuxed ({type(err).__name__}: {err})", path=path) from None
        raise
    output.close()
    return spans


class _OpenVideo:
    def __init__(self, path: Path):
        av = _av()
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "NONE"  # one frame at a time: decoder threads only add latency (and
        self.stream.codec_context.thread_count = 1  # DataLoader workers are the parallelism)
        self.time_base = float(self.stream.time_base)
        self.frame_time = 1.0 / float(self.stream.average_rate or self.stream.base_rate)
        self.iterator: Any = None
        self.last_time = -1.0  # time of the last decoded frame
        self.last: Any = None  # that frame, while decoding stands there

    def frame_at(self, timestamp: float, tolerance: float) -> np.ndarray:
        ahead = timestamp - self.last_time
        if self.last is not None and abs(ahead) <= tolerance:  # the frame just decoded (a float32 timestamp
            return rgb(self.last)  # may lie a hair after it: not the next one)
        # Continue forward if the target is past the last frame by at most a GOP; else seek.
        if self.iterator is None or not (tolerance < ahead <= (GOP + 0.5) * self.frame_time):
            pts = round(timestamp / self.time_base)
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
            self.iterator = self.container.decode(self.stream)
        closest = None
        for frame in self.iterator:
            time = float(frame.pts * self.time_base)
            self.last_time = time
            if time >= timestamp - tolerance:
                closest = frame
                break
        if closest is None or abs(self.last_time - timestamp) > tolerance:
            self.iterator = self.last = None
            got = "no frame" if closest is None else f"the nearest frame is at {self.last_time:.4f} s"
            raise Evo1Error(f"no frame at {timestamp:.4f} s ({got})", path=self.container.name)
        self.last = closest
        return rgb(closest)

    def close(self) -> None:
        self.container.close()


_INHERITED: list[OrderedDict[str, _OpenVideo]] = []


class FrameReader:
    """Frames by timestamp from many mp4 files, keeping at most `max_open` of them open (LRU).

    Safe to use from DataLoader workers: each process opens its own containers.
    """

    def __init__(self, max_open: int = 16, tolerance_s: float = 1e-4):
        self.max_open = max_open
        self.tolerance = tolerance_s
        self._open: OrderedDict[str, _OpenVideo] = OrderedDict()
        self._pid = os.getpid()

    def read(self, path: str | Path, timestamp: float) -> np.ndarray:
        """The RGB uint8 (H, W, 3) frame shown at `timestamp` seconds."""
        if os.getpid() != self._pid:  # forked into a worker: the parent's decoders are not ours
            # Never close or free them here: their decoder threads did not survive the fork, and closing
            # would wait on them forever. They stay referenced (copy-on-write memory) until exit.
            _INHERITED.append(self._open)
            self._open, self._pid = OrderedDict(), os.getpid()
        key = str(path)
        video = self._open.pop(key, None)
        if video is None:
            try:
                video = _OpenVideo(Path(path))
            except Exception as err:
                raise Evo1Error(f"cannot be opened ({type(err).__name__}: {err})", path=path) from None
            while len(self._open) >= self.max_open:
                self._open.popitem(last=False)[1].close()
        self._open[key] = video
        try:
            return video.frame_at(timestamp, self.tolerance)
        except Evo1Error:
            raise
        except Exception as err:
            self._open.pop(key).close()
            raise Evo1Error(f"decoding failed at {timestamp:.4f} s ({type(err).__name__}: {err})", path=path) from None

    def close(self) -> None:
        for video in self._open.values():
            video.close()
        self._open.clear()

    def __getstate__(self) -> dict[str, Any]:  # a DataLoader pickles the dataset for spawn workers
        return {"max_open": self.max_open, "tolerance": self.tolerance}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_open"], state["tolerance"])  # type: ignore[misc]


def read_frame_from_start(path: str | Path, timestamp: float, tolerance_s: float = 1e-4) -> np.ndarray:
    """The authors' way: open the file, decode from the first frame until `timestamp` (the baseline)."""
    av = _av()
    with av.open(str(path)) as container:
        last = None
        for frame in container.decode(video=0):
            last = frame
            if frame.time is not None and frame.time >= timestamp - tolerance_s:
                break
        if last is None:
            raise Evo1Error("has no frames", path=path)
        return rgb(last)
