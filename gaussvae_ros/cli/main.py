"""``gaussvae`` console entry point.

Each area of the package contributes its sub-commands through a module with a
``register(subparsers)`` function that adds parsers whose ``func`` default is called with the
parsed arguments and returns an exit code. JSON goes to stdout, progress and logs to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute sub-commands, in the order they appear in ``gaussvae --help``.
COMMAND_MODULES = (
    "gaussvae_ros.cli.core_commands",
    "gaussvae_ros.cli.vae_commands",
    "gaussvae_ros.cli.dataset_commands",
    "gaussvae_ros.cli.replay_commands",
    "gaussvae_ros.cli.db_commands",
    "gaussvae_ros.cli.play_commands",
    "gaussvae_ros.cli.graph_commands",
    "gaussvae_ros.cli.live_commands",
    "gaussvae_ros.cli.eval_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gaussvae",
        description="Fit images with 2D Gaussians, store them as a robot's visual memory, recall them.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        # A store that is locked, damaged or not a store raises StoreError; its module is loaded
        # whenever one can be raised, and importing it here would slow down every command.
        records = sys.modules.get("gaussvae_ros.store.records")
        if not isinstance(exc, (ValueError, OSError)) and not (records and isinstance(exc, records.StoreError)):
            raise
        print(f"gaussvae {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
