"""Canonical model and pure functions. Imports nothing from Qt, the store or the network."""
