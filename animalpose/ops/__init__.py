"""Small tensor operations shared by codecs, heads and losses (no model or dataset knowledge)."""
