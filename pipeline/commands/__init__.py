"""The commands: each CLI command end to end (pick the latest input, check the device once, chain stages).

One module per command, each with one entry point ``run``; ``cli.py`` parses
options and calls it. A command may chain stages; a stage never calls a command.
"""
