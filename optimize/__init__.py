"""SCIZOR optimize package."""
