"""Checkpoints from and to other tools: the Evo-1 authors' releases and LeRobot's `policy.type=evo1`.

convert.py   what a foreign checkpoint becomes (`Foreign`), format detection, import and export
authors.py   the authors' layout: DeepSpeed `mp_rank_00_model_states.pt` or `checkpoint.pt`, their
             config.json and norm_stats.json; remote-code InternViT names <-> native ones
lerobot.py   LeRobot's `pretrained_model/`: config.json, model.safetensors, processor stats, a VLM folder
verify.py    the checks a checkpoint must pass: names, shapes, dtypes, finite and sane values, stats,
             one forward pass
resolve.py   a checkpoint argument (evo1 dir, authors' dir, LeRobot dir, hub id) -> an evo1 directory,
             importing foreign ones once into the user's cache
"""
