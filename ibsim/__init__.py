"""SCIZOR ibsim package."""
