"""Command line: eid-gateway run | check-config | config show | jwks | keygen | demo."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway import __version__, admin_cli, keys, logs
from gateway.config import Settings, load_file
from gateway.config.listeners import metrics_ports_problem
from gateway.errors import ConfigError
from gateway.protocol.rate_limit import Limit

EXIT_CONFIG = 2
#: Where --config comes from when it is not given: this variable, then DEFAULT_CONFIG.
CONFIG_ENV = "EID_GATEWAY_CONFIG"
DEFAULT_CONFIG = "/etc/eid-gateway/config.yaml"
REDACTED = "<redacted>"
#: Keys whose values are secrets wherever they appear in the effective configuration.
SECRET_KEYS = frozenset({"secret", "previous_secrets", "client_secret", "password"})
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*):[^/@\s]*@")


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


def _plain(value: Any, key: str = "") -> Any:
    """Settings as YAML-able data: dataclasses and mappings as mappings, tuples as lists; secrets redacted."""
    if key in SECRET_KEYS and value not in (None, "", ()):
        return [REDACTED for _ in value] if isinstance(value, (tuple, list)) else REDACTED
    if isinstance(value, Limit):
        return str(value)  # 120/60s, as rate_limits are written
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, (tuple, list, frozenset, set)):
        return [_plain(v, key) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network, Path)):
        return str(value)
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", str(value))


def effective_config(settings: Settings) -> dict[str, Any]:
    """What the gateway runs with: every default filled in, ${VAR}s expanded, every secret "<redacted>".
    Listener addresses are written as the file writes them (``listen: host:port``)."""
    data = _plain(settings)
    if not data.pop("explicit_routes"):
        del data["routes"]  # the one route built from upstream, headers, public_paths and rules (shown above)

    def address(pair: Any) -> str | None:
        if pair is None:
            return None
        host, port = pair
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    out: dict[str, Any] = {"listen": address((data.pop("listen_host"), data.pop("listen_port")))}
    metrics, forward_auth = data.pop("metrics_listen"), data.pop("forward_auth_listen")
    out.update(data)
    out["metrics"] = {"listen": address(metrics)}
    out["forward_auth"] = {"listen": address(forward_auth)}
    return out


def cmd_config_show(args: argparse.Namespace) -> int:
    import yaml

    try:
        settings = _load(args.config)
    except ConfigError as error:
        _print_problems(error, args.config)
        return EXIT_CONFIG
    print(f"# {args.config}: the effective configuration (defaults filled in, secrets {REDACTED})")
    print(yaml.safe_dump(effective_config(settings), sort_keys=False, allow_unicode=True), end="")
    return 0


def cmd_jwks(args: argparse.Namespace) -> int:
    from gateway.runtime import load_key_files

    try:
        settings = load_file(args.config)
        material = load_key_files(settings)
    except ConfigError as error:
        _print_problems(error, args.config)
        return EXIT_CONFIG
    assertion = [keys.public_jwk(material.signing_key)] if material.signing_key is not None else []
    assertion += list(material.published)
    clients: dict[str, dict[str, list[dict[str, str]]]] = {}
    for provider in settings.providers:
        signing = material.client_keys.get(provider.name)
        encryption = material.encryption_keys.get(provider.name, ())
        if signing is None and not encryption:
            continue
        found = [keys.public_jwk(signing)] if signing is not None else []
        clients[provider.name] = {"keys": found + [keys.encryption_public_jwk(k) for k in encryption]}
    if material.signing_key is None:
        print(
            "eid-gateway: assertion.signing_key_file is not set: the gateway generates its assertion key at "
            "each start, so there is no assertion key to export (set it for a stable JWKS)",
            file=sys.stderr,
        )
    print(json.dumps({"assertion": {"keys": assertion}, "clients": clients}, indent=2))
    return 0


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


def _port(value: str) -> int:
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError("must be a port number from 1 to 65535")
    return int(value)


CONFIG_HELP = (
    f"the YAML config file (see config/example.yaml); default: ${CONFIG_ENV} if set, else {DEFAULT_CONFIG}"
)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eid-gateway",
        description="Nordic eID authentication gateway: logs people in with an OpenID Connect provider "
        "(BankID, MitID, FTN, Freja, ...) and passes their identity to the application behind it.",
        epilog=f"--config defaults to ${CONFIG_ENV}, then {DEFAULT_CONFIG}. Exit status: 0 ok, 2 a problem "
        "with the configuration, its key files or the listeners (each printed with its key and the fix).",
    )
    parser.add_argument("--version", action="version", version=f"eid-gateway {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the gateway", description="Run the gateway until SIGTERM/SIGINT; SIGHUP re-reads --config."
    )
    _add_config(run)
    run.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes sharing the port with SO_REUSEPORT, 1-256 (default: the number of cores, here "
        f"{os.cpu_count() or 1}); worker i serves metrics on metrics.listen's port + i",
    )
    run.set_defaults(func=cmd_run)
    check = commands.add_parser(
        "check-config",
        help="validate a config file and its key files, then exit",
        description="Validate the config file and read its key files without starting; exit 0 when valid, 2 "
        "with every problem listed otherwise.",
    )
    _add_config(check)
    check.add_argument(
        "--show-routes",
        action="store_true",
        help="also print the file's routes as a routes: list, most specific first (for a file without routes: "
        "how to write it with routes)",
    )
    check.set_defaults(func=cmd_check_config)
    config = commands.add_parser(
        "config", help="show the effective configuration", description="Commands about the configuration."
    )
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser(
        "show",
        help="print the effective configuration as YAML, secrets redacted",
        description="Print the configuration the gateway would run with, as YAML: every default filled in, "
        f"${{VAR}} expanded, and every secret (session.secret, previous_secrets, client_secret, "
        f"pairwise.secret, store passwords) shown as {REDACTED}.",
    )
    _add_config(show)
    show.set_defaults(func=cmd_config_show)
    jwks = commands.add_parser(
        "jwks",
        help="print the public keys to register at a provider or give to the applications",
        description='Print {"assertion": JWKS, "clients": {provider: JWKS}} as JSON: the public keys of the '
        "assertion (as /_auth/jwks.json serves them) and of each provider's client (private_key_file: use "
        "sig; encryption_key_file and previous ones: use enc; as /_auth/client-jwks/<provider>.json).",
    )
    _add_config(jwks)
    jwks.set_defaults(func=cmd_jwks)
    keygen = commands.add_parser(
        "keygen",
        help="make an assertion signing key and a session secret",
        description="Make a private key (EC P-256, or RSA 2048 with --rsa) and print a session secret.",
    )
    keygen.add_argument("--out", metavar="FILE", help="write the private key here (mode 600) instead of printing it")
    keygen.add_argument("--rsa", action="store_true", help="RSA 2048 instead of EC P-256 (e.g. for private_key_jwt)")
    keygen.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    keygen.set_defaults(func=cmd_keygen)
    admin_cli.add_parser(commands)
    demo = commands.add_parser(
        "demo",
        help="gateway + development IdP + echo upstream on loopback",
        description="Run the gateway, the development identity provider and an echo application on 127.0.0.1.",
    )
    demo.add_argument("--gateway-port", type=_port, default=8080, metavar="PORT",
                      help="the gateway's port (default: 8080); open http://127.0.0.1:PORT/")
    demo.add_argument("--idp-port", type=_port, default=8081, metavar="PORT",
                      help="the development identity provider's port (default: 8081)")
    demo.add_argument("--upstream-port", type=_port, default=8082, metavar="PORT",
                      help="the echo application's port (default: 8082)")
    demo.set_defaults(func=cmd_demo)
    return parser


def default_config(environ: Mapping[str, str] | None = None, default: str = DEFAULT_CONFIG) -> str | None:
    """--config when not given: $EID_GATEWAY_CONFIG (even if that file is missing: load_file says so), else
    /etc/eid-gateway/config.yaml when it exists, else None."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        return environ[CONFIG_ENV]
    return default if Path(default).exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "config") and args.config is None:
        args.config = default_config(default=DEFAULT_CONFIG)
        if args.config is None:
            parser.error(
                f"no config file: --config is not given, ${CONFIG_ENV} is not set, and {DEFAULT_CONFIG} "
                "does not exist; pass --config FILE or set " + CONFIG_ENV
            )
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
