"""The ftstudio engine: pure Python + torch, never Qt. The GUI and the CLI stand on it."""
