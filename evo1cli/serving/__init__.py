"""Remote inference: `evo1 serve` (server.py), its wire formats (wire.py), a light client (client.py) and
what every chunk loop shares (chunks.py: the query, the policy interface, the action queue).

client.py, wire.py and chunks.py need only numpy, msgpack and websockets, and ship as they are in the
RoboTwin plug-in (robotwin.py).
"""
