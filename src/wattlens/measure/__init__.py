"""Measured energy: sensors (one file per backend), the Meter and its windows, `wattlens run`."""
