"""SCIZOR serve package."""
