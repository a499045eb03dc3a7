"""Subcommands of the `ftstudio` command line, one module per group."""
