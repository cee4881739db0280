"""Real robots: hardware behind one interface, and the one safety layer every command passes.

base.py       the `Arm` interface and the robot configuration it is built from
config.py     robot configuration files, checked before anything moves (defaults in configs/)
session.py    robots as the commands open them: real or simulated hardware (decided there only), a
              session of arm + safety layer + cameras, interactive calibration
xarm6.py      the UFACTORY xArm6 driver (vendor SDK)
so100.py      the SO-100 follower and leader drivers, LeRobot's calibration
feetech.py    the Feetech STS3215 bus under the SO-100
safety.py     joint limits, step limits, workspace box, NaN rejection, watchdog, Ctrl-C
cameras.py    OpenCV cameras that answer with their newest frame or an error
view.py       a live camera window
ticks.py      the fixed-rate control tick of every robot loop, and its late-tick rule
fakes/        simulated hardware at the SDK boundary, for `--fake` and the tests

Hardware only: nothing here knows about policies, the client, serving, the runtime, datasets or
recording (tests/test_imports.py keeps it so). The closed loop of `evo1 deploy` is `evo1cli.deploy`;
recording demonstrations is `evo1cli.collect`.
"""
