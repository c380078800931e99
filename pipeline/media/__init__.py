"""What a person sees and hears: audio, piano rolls, figures, sheet music."""
