"""A small OpenID Provider for development, demos and tests. NEVER for production.

It imitates BankID Norway's OIDC flow (authorization code + PKCE S256, RFC 9207 ``iss``) and Idura's
Headless flow for Swedish BankID (``/headless/authorize`` + the headless grant at ``/token``, with a
simulated BankID app at ``/bankid-app`` and test controls under ``/_dev/``). It is deliberately
strict, because tests use it to check that the gateway behaves correctly. Every HTML page carries a
development banner, and the command line (``python -m gateway.devidp``) refuses to listen on
anything but loopback.
"""

from __future__ import annotations

from gateway.devidp.app import create_devidp_app
from gateway.devidp.clients import DevClient
from gateway.devidp.persons import TEST_PERSONS, TestPerson

__all__ = ["TEST_PERSONS", "DevClient", "TestPerson", "create_devidp_app"]
