"""Core helpers every layer may use: errors, files, configs, processes, the note table."""
