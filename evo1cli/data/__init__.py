"""Datasets in the LeRobot v2.1 and v3.0 layouts: reading, writing, converting, checking, statistics, loading.

Modules from the bottom up (each imports only those above it in this list):
types.py     what both layouts share: the metadata types (`DatasetMeta`, `Episode`), common paths and features,
             `Problems`, and the `Layout` interface (everything in which the two on-disk versions differ)
tables.py    parquet tables in LeRobot's schema: columns as numpy, frames as Arrow, files read and written
video.py     mp4 encoding as LeRobot does it, remuxing, and random-access frame decoding
reader.py    one episode's frames (state, action, timestamps) read as numpy arrays, then checked
v21.py       the v2.1 layout (LeRobot 0.3.x): one file per episode per kind; jsonl metadata
v30.py       the v3.0 layout (LeRobot >= 0.4): episodes share files; parquet metadata
format.py    `layout_for(version)`, the one place a version picks its layout; `load_meta` for any dataset
writer.py    episodes staged and committed atomically, in either layout; appending to an existing dataset
convert.py   v2.1 <-> v3.0 conversion (remux, never re-encode), and rewriting a dataset in its own layout
validate.py  every check `evo1 dataset validate` makes
stats.py     exact statistics, streamed, with exact quantiles; relative-action targets; fit to a model's widths
pad.py       a copy with state and action zero-padded to a model's widths (24 by default)
augment.py   the training image augmentation, in torch
loader.py    training windows (state, H actions, views, prompt) for a torch DataLoader

A new on-disk version is one more `Layout` module registered in format.py's `LAYOUTS`.
"""
