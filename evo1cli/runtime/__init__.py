"""The policy runtime every command shares, below the commands.

    device.py   where a policy runs and in which precision (`--device` / `--dtype`), decided once
    policy.py   the policy interface's local side (a checkpoint on a device), `open_policy`, chunk noise

The numpy-only pieces (the `Query`, the `Policy` protocol, the `ActionQueue`, the `ChunkBroker`) are the
light client, `evo1cli.client`.
"""
