"""Tickflow's shared contracts: settings, tick and bar schemas, topic and key names, the CLI root."""

__version__ = "0.1.0"
