"""``torch.nn`` modules of the built-in workloads. Importing anything here imports torch."""
