"""Scenarios (load patterns): when queries are issued and what is summarised. Contract in
:mod:`.base`; built-ins registered under the ``harness.scenarios`` entry point."""
