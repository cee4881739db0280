"""`ToTensor`: HWC uint8 -> CHW float32 in [0, 1], as torchvision's."""

import numpy as np
import torch


class ToTensor:
    def __call__(self, picture):
        array = np.array(picture)
        if array.ndim == 2:
            array = array[:, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor
