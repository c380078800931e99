"""The on-disk owners: one module per folder format, reader and writer side by side."""
