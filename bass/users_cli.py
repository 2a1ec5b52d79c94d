"""`bass user`: add people who may log in, remove them, give them API tokens.

`bass serve` reads the users file again whenever it changes: no restart needed.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from bass.auth import Users, UsersError
from bass.config import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="manage the people who may log in to the dashboard")
    p.add_argument(
        "--users-file",
        default=Settings.users_file,
        help="the users file of bass serve (default %(default)s)",
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="add a user, or set a user's password")
    add.add_argument("name")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of asking twice",
    )
    remove = verbs.add_parser("remove", help="remove a user (their sessions and tokens end)")
    remove.add_argument("name")
    verbs.add_parser("list", help="the users")
    token = verbs.add_parser("token", help="make an API token for scripts (shown once)")
    token.add_argument("name")
    token.add_argument("--label", default="", help="what the token is for")


def main(args: argparse.Namespace) -> int:
    users = Users(args.users_file)
    try:
        if args.verb == "add":
            users.add(args.name, _password(args))
            print(f"{args.name}: saved in {args.users_file}; people must now log in")
        elif args.verb == "remove":
            users.remove(args.name)
            print(f"{args.name}: removed")
        elif args.verb == "list":
            for name in users.names():
                print(name)
        else:
            print(users.new_token(args.name, args.label))
    except UsersError as e:
        print(f"bass user: {e}", file=sys.stderr)
        return 2
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise UsersError("the two passwords differ")
    return first
