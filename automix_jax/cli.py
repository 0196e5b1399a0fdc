"""The `automix-jax` command line.

Each subcommand lives in its own private module `automix_jax._cli_<name>` that
defines `register(subparsers)`; this module only wires them together, catches the
library's errors and prints them as one line with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
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


def _enable_compile_cache() -> None:
    """Keeps compiled XLA programs between runs (most of a small run is compiling).

    The cache lives in `$XDG_CACHE_HOME/automix-jax/xla` (or `~/.cache/...`);
    set `AUTOMIX_JAX_NO_COMPILE_CACHE=1` to turn it off.
    """
    if os.environ.get("AUTOMIX_JAX_NO_COMPILE_CACHE"):
        return
    import jax

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    try:
        jax.config.update(
            "jax_compilation_cache_dir", os.path.join(base, "automix-jax", "xla")
        )
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    except Exception:  # an older JAX without these options: run uncached
        pass


def main(argv: list[str] | None = None) -> int:
    _enable_compile_cache()
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
    except BrokenPipeError:
        # The reader went away (say, `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
