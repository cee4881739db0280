"""Remote inference: `evo1 serve` (server.py) and the RoboTwin plug-in it drives (robotwin.py).

The wire formats, the action queue and the websocket client are the light client, `evo1cli.client`.
"""
