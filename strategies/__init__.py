"""SCIZOR strategies package."""
