"""One module per pipeline stage, each a function over plain data and folders."""
