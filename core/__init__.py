"""SCIZOR core: domain types, errors, bar sizes, clocks and settings. No I/O, no Ray."""
