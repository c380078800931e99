"""musicrnn: commands over stages over measures over models over on-disk owners over codecs and media over inputs over core (see README: Architecture)."""
