"""Checkpoints from and to other tools: the Evo-1 authors' releases and LeRobot's `policy.type=evo1`.

foreign.py   what every format shares: the adapter interface (`CheckpointFormat`), what a foreign
             checkpoint becomes (`Foreign`), safe loading, the dimensions the weights determine
formats.py   the registry of formats (evo1, LeRobot, the authors') and format detection
authors.py   the authors' format: DeepSpeed `mp_rank_00_model_states.pt` or `checkpoint.pt`, their
             config.json and norm_stats.json; remote-code InternViT names <-> native ones
lerobot.py   LeRobot's `pretrained_model/`: config.json, model.safetensors, processor stats, a VLM folder
convert.py   import (any format -> evo1) and export (evo1 -> a writable format) through the adapters
verify.py    the checks a checkpoint must pass: names, shapes, dtypes, finite and sane values, stats,
             one forward pass
resolve.py   a checkpoint argument (evo1 dir, authors' dir, LeRobot dir, hub id) -> an evo1 directory,
             importing foreign ones once into the user's cache

`MAX_ABS` lives here, free of torch, so that `evo1 model verify --help` shows it without loading the model.
"""

MAX_ABS = 1e4  # largest sane |weight|: no trained Evo-1 comes near it; the broken LIBERO release holds ~1e37
