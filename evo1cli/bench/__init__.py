"""Closed-loop evaluation of policies in simulation."""
