"""The light client: everything a process needs to ask a policy for actions, without torch.

    wire.py        what travels over the websocket (msgpack with raw arrays, or the authors' JSON)
    chunks.py      the `Query`, the `Policy` interface, the `ActionQueue` and its latency planning
    background.py  one policy query at a time on its own thread
    broker.py      `ChunkBroker`: one action per tick from any `Policy`, synchronous or asynchronous
    remote.py      `PolicyClient` (the websocket client of `evo1 serve`), `RemotePolicy`, `ChunkExecutor`

Numpy, msgpack, websockets and the standard library only (a test imports every module and checks that
torch stayed out); modules import each other relatively, so the package ships as-is in the RoboTwin
plug-in (`evo1cli/serving/robotwin.py`). The local side of the policy interface, a checkpoint on a
device, is `evo1cli.runtime.policy.LocalPolicy`.
"""
