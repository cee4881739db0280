"""Datasets in the LeRobot v2.1 and v3.0 layouts: reading, writing, converting, checking, statistics, loading.

format.py    the metadata type both layouts load into; the v2.1 layout (paths, features, metadata read with
             every problem named)
v30.py       the v3.0 layout's metadata (tasks.parquet, meta/episodes), read and written
video.py     mp4 encoding as LeRobot does it, remuxing, and random-access frame decoding
writer.py    episodes staged and committed atomically, in either layout; appending to an existing dataset
convert.py   v2.1 <-> v3.0 conversion (remux, never re-encode), and rewriting a dataset in its own layout
reader.py    episode tables (state, action, timestamps) as numpy arrays
validate.py  every check `evo1 dataset validate` makes
stats.py     exact statistics, streamed, with exact quantiles; relative-action targets; fit to a model's widths
pad.py       a copy with state and action zero-padded to a model's widths (24 by default)
loader.py    training windows (state, H actions, views, prompt) for a torch DataLoader
augment.py   the training image augmentation, in torch
"""
