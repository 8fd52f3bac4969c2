"""Meters: power, energy and memory over exactly the measurement window. Contract in :mod:`.base`;
built-ins registered under the ``harness.meters`` entry point."""
