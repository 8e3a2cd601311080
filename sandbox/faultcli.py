"""``python -m sandbox faults --home DIR COMMAND``: the control interface from a shell.

    python -m sandbox faults --home .sandbox state
    python -m sandbox faults --home .sandbox latency 40
    python -m sandbox faults --home .sandbox set api:staging status --status 503 --seconds 10
    python -m sandbox faults --home .sandbox clear [TARGET]
    python -m sandbox faults --home .sandbox git-refuse [--seconds N] | git-allow

The work is in ``faultclient.py``; ``__main__.py`` dispatches here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import SandboxError
from .faultclient import FaultClient
from .faults import MODES
from .home import Home


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox faults")
    parser.add_argument("--home", type=Path, required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("state")
    latency = commands.add_parser("latency")
    latency.add_argument("ms", type=int)
    fault = commands.add_parser("set")
    fault.add_argument("target")
    fault.add_argument("mode", choices=MODES)
    fault.add_argument("--status", type=int, default=503)
    fault.add_argument("--delay-ms", type=int, default=0)
    fault.add_argument("--seconds", type=float)
    clear = commands.add_parser("clear")
    clear.add_argument("target", nargs="?")
    refuse = commands.add_parser("git-refuse")
    refuse.add_argument("--seconds", type=float)
    commands.add_parser("git-allow")
    args = parser.parse_args(argv)
    client = FaultClient(Home(args.home.resolve()))
    try:
        if args.command == "latency":
            state = client.set_latency(args.ms)
        elif args.command == "set":
            state = client.set_fault(
                args.target, args.mode, status=args.status, delay_ms=args.delay_ms, seconds=args.seconds
            )
        elif args.command == "clear":
            state = client.clear(args.target)
        elif args.command == "git-refuse":
            state = client.refuse_git_pushes(args.seconds)
        elif args.command == "git-allow":
            state = client.allow_git_pushes()
        else:
            state = client.state()
    except SandboxError as e:
        print(f"sandbox faults: {e}", file=sys.stderr)
        return 1
    json.dump(state, sys.stdout, indent=2)
    print()
    return 0
