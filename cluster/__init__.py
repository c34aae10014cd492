"""SCIZOR cluster package."""
