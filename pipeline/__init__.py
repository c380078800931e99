"""musicrnn pipeline: one module per stage, plain functions over plain data."""
