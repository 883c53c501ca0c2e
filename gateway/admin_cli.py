"""``eid-gateway sessions list|revoke``: the command line over session administration (gateway/admin.py).

It reads the gateway's config file for where the internal listener is (``metrics.listen``; worker 0 unless
``--worker``) and for the token (``admin.token_file``), and prints the answer as JSON. The national ID goes in
the request body, never on a URL.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from gateway.config import load_file
from gateway.errors import ConfigError

EXIT_CONFIG = 2


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sessions = commands.add_parser("sessions", help="list or end a person's sessions (needs admin.token_file)")
    actions = sessions.add_subparsers(dest="action", required=True)
    for name, text in (("list", "show a person's live sessions"), ("revoke", "end sessions now")):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "--config", metavar="FILE",
            help="the gateway's config file (metrics.listen, admin); default: $EID_GATEWAY_CONFIG if set, "
            "else /etc/eid-gateway/config.yaml",
        )
        action.add_argument("--worker", type=int, default=0, help="with --workers N: which worker's listener")
        who = action.add_mutually_exclusive_group(required=True)
        who.add_argument("--person", help="a national identity number")
        who.add_argument("--subject", metavar="PROVIDER:SUB", help="a provider's name and subject, for people "
                         "without a national identity number")
        if name == "revoke":
            who.add_argument("--session", help="one session, by the reference `sessions list` shows")
        action.set_defaults(func=run)


def _body(args: argparse.Namespace) -> dict[str, str]:
    if args.person:
        return {"person": args.person}
    if getattr(args, "session", None):
        return {"session": args.session}
    provider, colon, sub = args.subject.partition(":")
    if not colon or not provider or not sub:
        raise ValueError("--subject must be PROVIDER:SUB")
    return {"provider": provider, "sub": sub}


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_file(args.config)
    except ConfigError as error:
        print(f"eid-gateway: {args.config}: {len(error.problems)} problem(s) in the configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.admin is None or settings.metrics_listen is None:
        print(f"eid-gateway: {args.config}: session administration needs admin.token_file and metrics.listen",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        body = _body(args)
        token = Path(settings.admin.token_file).read_text(encoding="utf-8").strip()
    except (ValueError, OSError) as exc:
        print(f"eid-gateway: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    host, port = settings.metrics_listen
    # A listener on every address (a container) is reached on loopback from inside it.
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared, never bound
    url = f"http://{host}:{port + args.worker}/_auth/admin/sessions/{args.action}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"eid-gateway: {url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"eid-gateway: {url}: {getattr(exc, 'reason', exc)}; is the gateway running?", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0
