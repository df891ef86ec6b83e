"""The ``gaussvae`` command line: one entry point (:mod:`.main`), sub-commands registered per area.

The top layer: may import every room below, applications included. Its modules import the rooms
inside the command functions, on purpose: ``gaussvae`` imports every command module to build its
parser, and a top-level import of torch (~0.9 s) would slow ``gaussvae --help`` and every command.
"""
