"""The ``gaussvae`` command line: one entry point, sub-commands registered per area."""
