"""Closed-loop rollouts of a policy on a real (or simulated) arm: `evo1 deploy`.

rollout.py    the loop: observe, keep a chunk coming (`evo1cli.client.broker.ChunkBroker`), execute one
              action per tick through the safety layer, optionally record; its cadence report
replay.py     a recorded episode as a policy (`evo1 deploy --replay`)
fakes.py      scripted policies (`Circle`, `Delayed`) to rehearse and measure the loop without a model

The hardware (arms, cameras, the safety layer, the tick clock) is `evo1cli.robots`; recording
demonstrations is `evo1cli.collect`.
"""
