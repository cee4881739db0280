"""Simulated hardware at the lowest boundary, selected with `connection: {fake: true}` (or `--fake`).

In the package only `evo1cli.robots.session` imports these (the tests use them directly): `hardware_factory`
passes the arms' to the drivers as their SDK factory, `load_robot` swaps cameras for the rehearsal video.
No driver imports them.

- `xarm.FakeXArmAPI`: `xarm.wrapper.XArmAPI`'s method names, signatures (the subset the driver uses), return
  codes and failure modes, simulating the arm over time; it does not need the SDK.
- `feetech.FakePortHandler`: the Feetech SDK's own `PortHandler` over a simulated serial line that parses the
  real protocol packets and answers as STS3215 servos do; the SDK's packet handler runs unchanged on top.
- `camera.rehearsal_video`: an H.264 clip that OpenCV decodes and plays as a camera.

Each keeps a log of every command it received, so tests can check what actually reached the "hardware";
what only tests do to them (inject a collision, corrupt a reply) lives in tests/fake_events.py.
"""
