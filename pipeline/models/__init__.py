"""The recurrent network, its transpositions and key averaging."""
