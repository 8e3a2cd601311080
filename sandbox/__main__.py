"""``python -m sandbox serve|token|faults --home DIR``: the daemon, kubectl's credential plugin, faults."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .home import Home


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["faults"]:
        from .faultcli import main as faults

        return faults(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    parser.add_argument("command", choices=["serve", "token"])
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args(argv)
    home = Home(args.home.resolve())
    if args.command == "serve":
        from .daemon import main as serve

        serve(home)
        return 0
    from .kube.auth import exec_credential

    try:
        credential = exec_credential(home)
    except RuntimeError as e:
        print(f"sandbox token: {e}", file=sys.stderr)
        return 1
    json.dump(credential, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
