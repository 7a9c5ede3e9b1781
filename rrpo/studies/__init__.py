"""The RRPO paper's studies as commands: ``python -m rrpo study transfer|noisy|depth``."""
