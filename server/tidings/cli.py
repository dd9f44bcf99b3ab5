"""`tidings serve`, `tidings token`, `tidings firehose status|replay|purge|enable`, and
`tidings import` / `tidings export` (an app's data in and out, as NDJSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from . import auth
from .config import ConfigError, Settings, check_serving, load_settings, url_location
from .domain.errors import TidingsError
from .domain.feeds import USER_ID_RE, parse_feed_id
from .domain.ids import parse_time


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidings", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help="a TOML file over the built-in defaults")
    serve.add_argument("--host", help="address to listen on (server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (server.port)")
    serve.add_argument("--data-dir", help="where the embedded store keeps its data")
    serve.add_argument(
        "--workers", type=int, help="worker processes sharing the port (server.workers)"
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    token = commands.add_parser("token", help="print a JWT signed with the configured secret")
    token.add_argument("--config", help="a TOML file over the built-in defaults")
    token.add_argument("--server", action="store_true", help="a server token: everything")
    token.add_argument(
        "--user", metavar="ID", help="a user token for this user id; with --feed, the member"
    )
    token.add_argument(
        "--feed", metavar="FEED_ID", help="a token for one feed (raid:42), for --action"
    )
    token.add_argument(
        "--action",
        choices=ACTIONS,
        help="with --feed: what the token allows on it (default read; * for everything)",
    )
    token.add_argument("--ttl", type=float, help="seconds until it expires (default: never)")

    firehose = commands.add_parser("firehose", help="the firehose's outbox (webhooks and SQS)")
    actions = firehose.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="messages due, in flight and dead, per endpoint")
    status.add_argument("--config", help="a TOML file over the built-in defaults")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    replay = actions.add_parser("replay", help="dead-lettered messages back to due")
    replay.add_argument("--config", help="a TOML file over the built-in defaults")
    replay.add_argument(
        "--endpoint", type=int, metavar="N", help="only endpoint N (as `status` numbers them)"
    )
    replay.add_argument(
        "--since", metavar="T", help="only messages dead since T (ISO-8601; no offset: UTC)"
    )
    purge = actions.add_parser("purge", help="delete dead-lettered messages")
    purge.add_argument("--config", help="a TOML file over the built-in defaults")
    purge.add_argument(
        "--endpoint", type=int, metavar="N", help="only endpoint N (as `status` numbers them)"
    )
    purge.add_argument(
        "--before", metavar="T", help="only messages dead before T (ISO-8601; no offset: UTC)"
    )
    enable = actions.add_parser("enable", help="send an endpoint disabled by a 410 updates again")
    enable.add_argument("--config", help="a TOML file over the built-in defaults")
    enable.add_argument("endpoint", type=int, metavar="N", help="as `status` numbers it")

    load = commands.add_parser("import", help="import NDJSON files (users, activities, ...)")
    load.add_argument("--config", help="a TOML file over the built-in defaults")
    load.add_argument("files", nargs="+", metavar="FILE", help="NDJSON, one record a line")
    load.add_argument("--batch", type=int, default=1000, help="lines per chunk (default 1000)")
    load.add_argument(
        "--restart", action="store_true", help="from the first line, whatever FILE.checkpoint says"
    )
    load.add_argument("--json", action="store_true", help="print the summary as JSON")
    dump = commands.add_parser("export", help="write the store as NDJSON, as import reads it")
    dump.add_argument("--config", help="a TOML file over the built-in defaults")
    dump.add_argument("-o", "--output", metavar="FILE", help="where to (default: stdout)")
    return parser


ACTIONS = ("read", "write", "delete", "*")


def _check_token_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command != "token":
        return
    if args.server and (args.user or args.feed or args.action):
        parser.error("--server takes none of --user, --feed, --action")
    if not (args.server or args.user or args.feed):
        parser.error("one of --server, --user ID, --feed FEED_ID is required")
    if args.action and not args.feed:
        parser.error("--action needs --feed")


def _user_id(value: str) -> str:
    if not USER_ID_RE.match(value):
        raise ConfigError(f"--user {value!r} is not a user id ({USER_ID_RE.pattern})")
    return value


def _firehose(args: argparse.Namespace, settings: Settings) -> int:
    from pymongo.errors import PyMongoError

    from .firehose import admin

    try:
        return _firehose_action(admin, args, settings)
    except PyMongoError as exc:
        print(f"tidings: the store at {url_location(str(settings.mongodb.url))}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1


def _transfer(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from pymongo.errors import PyMongoError

    from .app.offline import exporting, importing
    from .transfer import command

    try:
        if args.command == "export":
            return asyncio.run(command.run_export(exporting(settings), args.output))
        files = [Path(f) for f in args.files]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"no such file: {', '.join(missing)}")
        if args.batch < 1:
            raise ConfigError("--batch must be at least 1")
        opened = importing(settings)
        return asyncio.run(command.run_import(opened, files, args.batch, args.restart, args.json))
    except PyMongoError as exc:
        print(f"tidings: the store at {url_location(str(settings.mongodb.url))}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1


def _firehose_action(admin: Any, args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "status":
        report = asyncio.run(admin.status(settings))
        print(json.dumps(report, indent=2) if args.json else admin.status_table(report))
        return 0
    if args.action == "enable":
        skipped = asyncio.run(admin.enable(settings, args.endpoint))
        if skipped is None:
            print(f"endpoint {args.endpoint} was not disabled")
        else:
            print(f"enabled endpoint {args.endpoint} ({skipped} updates were skipped while it "
                  "was disabled)")  # fmt: skip
        return 0
    if args.action == "purge":
        before = _time("--before", args.before)
        print(f"purged {asyncio.run(admin.purge(settings, args.endpoint, before))} dead messages")
        return 0
    replayed = asyncio.run(admin.replay(settings, args.endpoint, _time("--since", args.since)))
    print(f"replayed {replayed} messages")
    return 0


def _time(flag: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: not an ISO-8601 time: {exc}") from None


def _token(args: argparse.Namespace, settings: Settings) -> str:
    secret = str(settings.auth.api_secret)
    if args.server:
        return auth.server_token(secret, args.ttl)
    if args.feed:
        feed = parse_feed_id(args.feed, settings.feeds.keys())
        user_id = _user_id(args.user) if args.user else None
        return auth.feed_token(feed, secret, args.ttl, args.action or "read", user_id)
    return auth.user_token(args.user, secret, args.ttl)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_token_args(parser, args)
    flags = {}
    if args.command == "serve":
        flags = {
            "server": {
                "host": args.host,
                "port": args.port,
                "data_dir": args.data_dir,
                "workers": args.workers,
            }
        }
    try:
        settings = load_settings(args.config, overrides=flags)
        if args.command == "token":
            print(_token(args, settings))
            return 0
        if args.command == "firehose":
            return _firehose(args, settings)
        if args.command in ("import", "export"):
            return _transfer(args, settings)
        check_serving(settings)
    except (ConfigError, TidingsError) as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    pid = "[%(process)d] " if settings.server.workers > 1 or settings.server.reuse_port else ""
    logging.basicConfig(
        level=args.log_level, format=f"%(asctime)s %(levelname)s {pid}%(name)s %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if settings.server.workers > 1:
        from .runtime.supervisor import supervise

        return supervise(settings, args.config, args.log_level)
    from .app.factory import create_app

    web.run_app(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_timeout,
        reuse_port=settings.server.reuse_port,
        max_line_size=settings.server.max_url_bytes,  # to the request parser
        print=lambda line: logging.getLogger("tidings").info("%s", line.strip()),
    )
    return 0
