"""The Evo-1 policy: InternVL3 embedder, cross-attention flow-matching action head, and what surrounds them.

config.py            Evo1Config: every dimension, the padded state/action widths, normalisation, presets
backbone.py          InternVL3 as an embedder of (camera views, instruction) -> context tokens
tokenizer.py         the offline byte-level tokenizer of the tiny preset
images.py            camera images -> the vision tower's input
action_head.py       the cross-modulated diffusion transformer that predicts a velocity
flow_matching.py     the training loss and the Euler sampler
normalization.py     per-(embodiment, dataset) stats and the normaliser, with every edge case stated
relative_actions.py  to_relative / to_absolute: action chunks as offsets from the state, and back
policy.py            Evo1Model: raw observations in, executable action chunks out
checkpoint.py        checkpoint directories: save and load a policy offline
"""
