"""Datasets in the LeRobot v2.1 layout: reading, writing, checking, statistics and the training loader.

format.py    the v2.1 layout: paths, features, metadata (read with every problem named)
video.py     mp4 encoding as LeRobot does it, and random-access frame decoding
writer.py    episodes staged and committed atomically; appending to an existing dataset
reader.py    episode tables (state, action, timestamps) as numpy arrays
validate.py  every check `evo1 dataset validate` makes
stats.py     exact statistics, streamed, with exact quantiles; relative-action targets; fit to a model's widths
pad.py       a copy with state and action zero-padded to a model's widths (24 by default)
loader.py    training windows (state, H actions, views, prompt) for a torch DataLoader
augment.py   the training image augmentation, in torch
"""
