"""`VideoReader` with the semantics of torchvision's PyAV backend: seek to the keyframe at or before a
time, then iterate frames as {"data": CHW uint8, "pts": seconds}."""

import av
import torch


class VideoReader:
    def __init__(self, src, stream="video", num_threads=0):
        self.container = av.open(src)
        self.stream = self.container.streams.video[0]
        self.frames = self.container.decode(self.stream)

    def __iter__(self):
        return self

    def __next__(self):
        frame = next(self.frames)  # StopIteration at the end
        data = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
        return {"data": data, "pts": float(frame.pts * frame.time_base)}

    def seek(self, time_s, keyframes_only=False):
        offset = round(max(time_s, 0) / self.stream.time_base)
        self.container.seek(offset, backward=True, any_frame=False, stream=self.stream)
        self.frames = self.container.decode(self.stream)
        return self
