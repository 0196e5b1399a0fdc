"""The `automix-jax` command line.

Each subcommand lives in its own private module `automix_jax._cli_<name>` that
defines `register(subparsers)`; this module only wires them together, catches the
library's errors and prints them as one line with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from ._errors import AutomixError

# Subcommands in the order `--help` lists them.
_COMMANDS = ("evaluate", "tune", "solve", "run", "route", "plot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="automix-jax",
        description=(
            "Decide, query by query, which language model to pay for "
            "(AutoMix self-verification plus a meta-verifier), in JAX."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  automix-jax evaluate                      # bundled real demo data\n"
            "  automix-jax evaluate --data runs.jsonl --models small,large --json\n"
            "  automix-jax solve Tiger.pomdp\n"
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        module_name = f"automix_jax._cli_{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except AutomixError as error:
        print(f"automix-jax {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"automix-jax {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
