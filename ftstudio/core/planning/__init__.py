"""Sizing a run before it starts: the largest batch that fits (`batch_size`) and whether a network
fits the chosen device at all, with what to do when it doesn't (`memory`)."""
