"""Backends: how a batch is computed (the system under test). Plugin contract in :mod:`.base`;
built-ins registered under the ``harness.backends`` entry point like third-party ones."""
