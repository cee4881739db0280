"""Recording demonstrations into datasets: every recording loop lives here.

dataset.py    the one dataset-opening function, one episode's recorder, the recording summary
metaworld.py  scripted experts in the Meta-World simulator (`evo1 collect --robot metaworld`)
teleop.py     teleoperation of a real (or simulated) arm (`evo1 collect --robot xarm6|so100`)

Hardware (drivers, cameras, safety, calibration) is `evo1cli.robots`; `evo1 deploy --record` records its
rollouts through dataset.py too.
"""
