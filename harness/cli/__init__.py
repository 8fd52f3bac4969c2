"""Command line: the ``harness`` entry point, one module per command group.

A surface: it parses arguments, calls the Python API of the stages below and prints. It
holds no logic the API lacks. It may import any stage; nothing imports it.
"""

from harness.cli.main import app, main

__all__ = ["app", "main"]
