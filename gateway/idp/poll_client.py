"""Poll-based logins at the provider (I/O layer): Idura headless and CIBA poll mode.

The protocol decisions are in gateway.protocol.poll; this module only sends the start request and
the polls. Polls of one transaction are single-flight within a process, and a poll never happens
before the transaction's next_poll_at, so many browser polls cause at most one provider poll per
interval.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from gateway.config import ProviderSettings
from gateway.errors import IdpUnavailableError
from gateway.idp.oidc_client import OidcClient
from gateway.protocol import poll
from gateway.protocol.poll import PollOutcome, PollTransaction

#: Newest state of each transaction this process has seen (bounded; the cookie stays the source of truth).
MAX_TRACKED = 50_000


class PollClient:
    def __init__(
        self,
        settings: ProviderSettings,
        oidc_client: OidcClient,
        *,
        clock: Callable[[], float] = time.time,
        count_poll: Callable[[str], None] = lambda _result: None,
        claim_poll: Callable[[str, float], Awaitable[bool]] | None = None,
    ) -> None:
        self.settings = settings
        self.oidc = oidc_client
        self._clock = clock
        self._count_poll = count_poll
        # Across replicas (shared store): True when this replica may poll this transaction now; another
        # replica that polled it within the interval holds the claim.
        self._claim_poll = claim_poll
        self._latest: OrderedDict[str, PollTransaction] = OrderedDict()
        self._flights: dict[str, asyncio.Task[PollOutcome]] = {}

    @property
    def kind(self) -> poll.PollKind:
        return "ciba" if self.settings.flow == "ciba" else "headless"

    async def _start_endpoint(self) -> str:
        if self.kind == "headless":
            assert self.settings.headless_authorize_endpoint is not None
            return self.settings.headless_authorize_endpoint
        if self.settings.backchannel_authentication_endpoint:
            return self.settings.backchannel_authentication_endpoint
        endpoint = (await self.oidc.metadata()).backchannel_authentication_endpoint
        if endpoint is None:
            raise IdpUnavailableError("no_backchannel_endpoint")
        return endpoint

    async def start(self, *, end_user_ip: str | None, login_hint: str | None = None) -> PollTransaction:
        form = poll.build_start_form(
            self.kind,
            scope=self.settings.scopes,
            acr_values=self.settings.acr_values,
            end_user_ip=end_user_ip if self.kind == "headless" else None,
            login_hint=login_hint,
            binding_message=self.settings.binding_message,
        )
        status, document = await self.oidc.post_authenticated("start", await self._start_endpoint(), form)
        if status is None:
            raise IdpUnavailableError("start_unreachable")
        tx = poll.parse_start_response(
            self.kind,
            status,
            document,
            provider=self.settings.name,
            now=self._clock(),
            default_interval=self.settings.poll_interval,
        )
        self.remember(tx)
        return tx

    def remember(self, tx: PollTransaction) -> None:
        self._latest[tx.request_id] = tx
        self._latest.move_to_end(tx.request_id)
        while len(self._latest) > MAX_TRACKED:
            self._latest.popitem(last=False)

    def forget(self, request_id: str) -> None:
        self._latest.pop(request_id, None)

    def newest(self, tx: PollTransaction) -> PollTransaction:
        """The newer of the browser's copy and this process's copy (a second tab may hold an older cookie)."""
        known = self._latest.get(tx.request_id)
        return known if known is not None and known.polls >= tx.polls else tx

    def pending_count(self, now: float) -> int:
        return sum(1 for t in self._latest.values() if t.status == "pending" and t.expires_at > now)

    async def wait_until_due(self, tx: PollTransaction) -> None:
        """Hold a status call that came just before the next poll is due until it is (protocol/poll.py
        ``wait_until_due``); the caller checks that the transaction is still live before polling."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + poll.EARLY_ASK_WINDOW + 0.1  # also bounded if a test's clock stands still
        wait = poll.wait_until_due(self.newest(tx), self._clock())
        while wait > 0 and loop.time() < deadline:
            # A loop, not one sleep: uvloop's timers have millisecond resolution and may wake a little early.
            await asyncio.sleep(wait)
            wait = poll.wait_until_due(self.newest(tx), self._clock())

    async def poll_if_due(self, tx: PollTransaction) -> PollOutcome:
        """Poll the provider when the transaction is due, once per interval however many callers ask."""
        tx = poll.expire_if_past(self.newest(tx), self._clock())
        if tx.terminal or not poll.is_due(tx, self._clock()):
            self.remember(tx)
            return PollOutcome(tx=tx, id_token=None, result="not_due")
        flight = self._flights.get(tx.request_id)
        if flight is None:
            flight = asyncio.ensure_future(self._poll(tx))
            self._flights[tx.request_id] = flight
            flight.add_done_callback(functools.partial(self._landed, tx.request_id))
        return await asyncio.shield(flight)

    def _landed(self, request_id: str, _flight: asyncio.Task[PollOutcome]) -> None:
        self._flights.pop(request_id, None)

    async def _poll(self, tx: PollTransaction) -> PollOutcome:
        if self._claim_poll is not None and not await self._claim_poll(tx.request_id, tx.interval * 0.9):
            return PollOutcome(tx=tx, id_token=None, result="not_due")
        form = poll.build_poll_form(tx, grant_type=self.settings.grant_type)
        try:
            metadata = await self.oidc.metadata()
        except IdpUnavailableError:
            status, document = None, None  # counted as a network error: back off, stay pending
        else:
            status, document = await self.oidc.post_authenticated("poll", metadata.token_endpoint, form)
        outcome = poll.apply_poll_response(tx, status, document, now=self._clock())
        self._count_poll(outcome.result)
        self.remember(outcome.tx)
        return outcome
