"""Simulators of the VTEX and icomm APIs. Test and demo tooling: never imported by production code."""
