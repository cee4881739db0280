"""The policy runtime every command shares, below the commands.

    device.py   where a policy runs and in which precision (`--device` / `--dtype`), decided once
    policy.py   the policy interface's local side (a checkpoint on a device), `open_policy`, chunk noise
    background.py  one policy query at a time on its own thread (asynchronous `evo1 deploy`)

The numpy-only pieces (the `Query`, the `Policy` protocol, the `ActionQueue`) live in
`evo1cli/serving/chunks.py`, next to the light client that ships them.
"""
