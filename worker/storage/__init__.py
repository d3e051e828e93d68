"""Redis storage: every key with its expiry or bound (keys.py)."""
