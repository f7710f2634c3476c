"""Keys: the key set, the slots that wrap it, and the primitives they are built from."""
