"""The RoboTwin 2.0 policy folder that `evo1 bench robotwin --export-plugin` writes (see ../robotwin.py)."""
