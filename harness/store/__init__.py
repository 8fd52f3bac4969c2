"""Store: keeping runs and reading them back.

Atomic writes, run directories (``run.json`` + raw Parquet), loading runs by path, id or
baseline name, the cells table, uploads, and exports to other tools' formats. It may import
``harness.core`` only.
"""
