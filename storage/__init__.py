"""SCIZOR storage package."""
