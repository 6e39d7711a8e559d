"""What several subcommands share: loading the config and reporting errors."""

from __future__ import annotations

import argparse
import sys

from onyproxy.config import ConfigError, GatewayConfig, load_config


def load_or_exit(args: argparse.Namespace) -> GatewayConfig:
    """The validated config, or the problems on stderr and exit status 1."""
    try:
        return load_config(args.config)
    except ConfigError as exc:
        fail("\n".join(exc.problems))
        raise AssertionError("unreachable") from None


def fail(message: str) -> None:
    """Print ``message`` to stderr and exit with status 1."""
    print(f"onyproxy: {message}", file=sys.stderr)
    sys.exit(1)
