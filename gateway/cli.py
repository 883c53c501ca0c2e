"""Command line: eid-gateway run | check-config | keygen | demo."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway import __version__, keys, logs
from gateway.config import Settings, load_file
from gateway.config.listeners import metrics_ports_problem
from gateway.errors import ConfigError

EXIT_CONFIG = 2


def _print_problems(error: ConfigError, path: str) -> None:
    print(f"eid-gateway: {path}: {len(error.problems)} problem(s) in the configuration:", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)


def _load(path: str) -> Settings:
    from gateway.runtime import load_key_files

    settings = load_file(path)
    load_key_files(settings)  # key files are read here: their problems are config problems too
    return settings


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        settings = _load(args.config)
    except ConfigError as error:
        _print_problems(error, args.config)
        return EXIT_CONFIG
    print(f"{args.config}: configuration is valid")
    if args.show_routes:
        _print_routes(settings)
    return 0


def _print_routes(settings: Settings) -> None:
    import yaml

    from gateway.config.routes import routes_form

    legacy = not settings.explicit_routes
    routes = routes_form(settings.routes, legacy=legacy, public_paths=settings.public_paths)
    if legacy:
        print(
            "# Without routes, this file is one route for every request. The same with routes: replace the "
            "top-level\n# upstream, headers, public_paths and rules with the list below. One difference: a "
            "route's assertion\n# carries only the claims its headers list (today's carries every verified "
            "claim); add any it needs."
        )
    print(yaml.safe_dump({"routes": routes}, sort_keys=False, allow_unicode=True), end="")


def cmd_run(args: argparse.Namespace) -> int:
    from gateway import server

    parser_problem = server.check_parser()
    if parser_problem:
        print(f"eid-gateway: {parser_problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        from gateway.runtime import load_key_files

        settings = load_file(args.config)
        load_key_files(settings)
        # What only this machine can say (ports in use or privileged, addresses not here), before any worker.
        problems = [p for p in [metrics_ports_problem(settings.metrics_listen, args.workers)] if p]
        problems += server.check_listeners(settings, args.workers) if not problems else []
        if problems:
            raise ConfigError(problems)
        logs.configure(settings.log_level)
        return server.run(settings, workers=args.workers, config_path=args.config)
    except ConfigError as error:  # server.ListenerError too: a socket taken after the check
        _print_problems(error, args.config)
        return EXIT_CONFIG


def cmd_keygen(args: argparse.Namespace) -> int:
    pem = keys.generate_rsa_pem() if args.rsa else keys.generate_ec_pem()
    signing_key = keys.signing_key_from_pem(pem)
    secret = keys.generate_session_secret()
    if args.out:
        out = Path(args.out)
        if out.exists() and not args.force:
            print(f"eid-gateway: {out} exists; pass --force to overwrite it", file=sys.stderr)
            return 1
        # The key is written through a descriptor opened 0600, and an existing file is re-moded too.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
        finally:
            os.close(fd)
        print(f"wrote {'RSA' if args.rsa else 'EC P-256'} private key to {out} (kid {signing_key.kid})")
    else:
        sys.stdout.write(pem.decode())
    print(f"session secret (for session.secret): {secret}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(gateway_port=args.gateway_port, idp_port=args.idp_port, upstream_port=args.upstream_port)


def _positive(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 256:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 256")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eid-gateway", description="Nordic eID authentication gateway")
    parser.add_argument("--version", action="version", version=f"eid-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the gateway")
    run.add_argument("--config", required=True, help="YAML config file (see config/example.yaml)")
    run.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        help="processes sharing the port with SO_REUSEPORT (default: the number of cores)",
    )
    run.set_defaults(func=cmd_run)
    check = commands.add_parser("check-config", help="validate a config file and its key files, then exit")
    check.add_argument("--config", required=True)
    check.add_argument(
        "--show-routes",
        action="store_true",
        help="also print the file's routes as a routes: list, most specific first (for a file without routes: "
        "how to write it with routes)",
    )
    check.set_defaults(func=cmd_check_config)
    keygen = commands.add_parser("keygen", help="make an assertion signing key and a session secret")
    keygen.add_argument("--out", help="write the private key here (mode 600) instead of printing it")
    keygen.add_argument("--rsa", action="store_true", help="RSA 2048 instead of EC P-256 (e.g. for private_key_jwt)")
    keygen.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    keygen.set_defaults(func=cmd_keygen)
    demo = commands.add_parser("demo", help="gateway + development IdP + echo upstream on loopback")
    demo.add_argument("--gateway-port", type=int, default=8080)
    demo.add_argument("--idp-port", type=int, default=8081)
    demo.add_argument("--upstream-port", type=int, default=8082)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
