"""Encodings: note tables <-> token sequences, one codec per encoding."""
