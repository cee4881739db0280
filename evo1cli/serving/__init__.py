"""Remote inference: `evo1 serve` (server.py), its wire formats (wire.py) and a light client (client.py)."""
