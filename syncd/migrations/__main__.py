"""Developer entry point: ``python -m syncd.migrations revision -m "..."``.

Only ``revision`` is offered; upgrading is the store's job (:meth:`Store.upgrade`)
so that the advisory lock and the SQLite pragmas are always in place.
"""

from __future__ import annotations

import argparse

from alembic import command

from syncd.store import alembic_config


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m syncd.migrations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="write an empty new revision file")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args()
    command.revision(alembic_config(), message=args.message)


if __name__ == "__main__":
    main()
