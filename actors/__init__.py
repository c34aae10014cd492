"""SCIZOR actors package."""
