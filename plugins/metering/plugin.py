"""Plugin ``metering``: one usage event per exchange, priced, spooled durably, stored once.

Put it last in the pipeline: its ``on_request`` (the budget check) then sees the identity auth
set, and its ``on_complete`` runs first, before the other plugins' (response-side hooks run in
reverse order).

**What an event holds** (see :mod:`.record`): who, which key, surface, client-facing model,
provider and provider model, attempts, status, error type, prompt / completion / cached /
reasoning tokens, cost (Decimal USD), latency, time to first token, streamed, client IP, user
agent, flags. Never prompt or completion text. Tokens come from the provider's usage; when it
gave none, or a stream was cut short (``partial``: the client went away mid-stream), they are
counted with a real tokenizer (:mod:`.estimate`) over the request and the text relayed so far,
and the event is flagged ``estimated``. A stream's events are only referenced while it runs, to
count them if needed; nothing of them is kept after the exchange.

**Durability: what "never lost" means exactly.** A record is written (``write(2)``) to this
process's spool file *before the client has the complete answer*:

- JSON answers and errors: ``on_complete`` runs before the core sends the response, and
  writes the record itself (:mod:`.writer`: a few hundred bytes into the page cache, on the
  event loop, microseconds; no thread hop, no wait);
- streams: the record is written when the stream's final event (``[DONE]``, ``message_stop``,
  ``response.completed``, Gemini's chunk with ``finishReason``) passes ``on_chunk``, before
  that event is sent; the provider's usage has arrived by then.

From that ``write`` on, the record survives the gateway being killed, ``kill -9`` included: it
is in the kernel's page cache, and the next start replays it. A sync thread ``fdatasync``-s
it within 20 ms (group commit: one sync for all records that arrived meanwhile, at most one
per 20 ms), so a crash of the whole machine or a power cut can lose at most the records of
the last 20 ms; a response never waits for that sync. So: every request whose client got a
complete answer is recorded, exactly once, unless the machine itself went down within 20 ms
of the answer. A record is not on disk before the answer only when the disk
refuses it (full, read-only: it then waits in memory, is retried every second, and the log
says so); exchanges that end without a complete answer (client gone, stream broken) are
recorded in ``on_complete``, just after. Exchanges the server cuts at shutdown (streams
longer than its drain) are recorded too, flagged ``partial``: stopping waits for their
``on_complete`` before it stops the tokenizer, the writer and the flusher.

A full spool disk (:mod:`.writer`): records wait in memory, bounded by ``memory_backlog_mb``,
and go from there to the store (or to the disk once it takes them). Past the bound,
``on_backlog_full: refuse`` answers new requests 503 (the records of admitted ones are still
kept), ``accept`` lets them through and counts each dropped record in
``onyproxy_usage_records_lost_total``. Metrics of the plugin's own: :mod:`.spool_metrics`.

The store write happens later, in the background (:mod:`.flusher`): the request path never
waits on the database, and a record is stored exactly once because the store skips request
ids it already holds. Metrics: ``onyproxy_spool_depth``, ``onyproxy_spool_flush_errors_total``.

**Budgets** (:mod:`.budget`): monthly USD per key (``budget_usd`` of the key) and per account
(``budget_usd`` of the account); over budget is a 429 ``insufficient_quota`` in the caller's
API shape.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from onyproxy.catalog import catalog_path, load_catalog
from onyproxy.errors import GatewayError, StartupError
from onyproxy.exchange import Exchange, Usage
from onyproxy.logs import log_crash
from onyproxy.pipeline import Plugin
from onyproxy.sse import Event
from onyproxy.storage import StorageError
from plugins.metering import estimate
from plugins.metering.budget import AccountBudgets, Ledger, Reservation, Scope
from plugins.metering.config import MeteringConfig, check_config, spool_root
from plugins.metering.cost import Prices, cost_of, estimated_cost, unpriced_tools
from plugins.metering.finishing import Finishing
from plugins.metering.flusher import Flusher
from plugins.metering.record import build_event, encode, event_id, wanted
from plugins.metering.spool import SpoolDir
from plugins.metering.spool_metrics import spool_metrics
from plugins.metering.tasks import Background
from plugins.metering.writer import SpoolWriter

log = logging.getLogger("onyproxy.metering")

STOP_FLUSH_S = 5.0  # at shutdown, how long the last store write may take
STOP_WAIT_S = 10.0  # at shutdown, how long exchanges cut by the server may take to record
SCOPE_TITLES = {"key": "this API key", "account": "this account"}


@dataclass
class MeterState:
    """``ex.state["metering"]``: this plugin's part of one exchange."""

    reservation: Reservation | None = None
    scopes: list[Scope] = field(default_factory=list)
    recorded: bool = False
    cost: Decimal = Decimal(0)
    stream_data: list[str] = field(default_factory=list)  # references, counted only if needed
    ids: tuple[str, str | None] | None = None  # (event id, client's id): fixed once chosen


class MeteringPlugin(Plugin):
    """Records usage, prices it, enforces budgets."""

    name = "metering"
    Config = MeteringConfig
    check_config = staticmethod(check_config)

    def __init__(self, config: MeteringConfig, gateway: Any) -> None:
        super().__init__(config, gateway)
        self.prices = Prices(gateway.config, load_catalog(catalog_path(gateway.config)))
        self.tokenizer = estimate.Tokenizer()
        self.ledger = Ledger()
        self.accounts = AccountBudgets(lambda: self.gateway.store, config.account_cache_s)
        self.root = spool_root(config, gateway.config)
        self.writer: SpoolWriter | None = None
        self.flusher: Flusher | None = None
        self.background = Background(self)
        self.finishing = Finishing()
        self.spool_metrics = spool_metrics(gateway)
        self._losing = False

    # --- lifetime ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.prices.warn_unpriced()
        # The tokenizer (~135 MB) loads on first need, not here: providers report usage, so
        # most gateways never need it, and a worker stays small until one does.
        self.writer = await self._start_writer()
        self.flusher = Flusher(
            self.writer, self.root, lambda: self.gateway.store, self.gateway.metrics,
            batch_size=self.config.batch_size, interval_s=self.config.flush_interval_s,
            retry_max_s=self.config.retry_max_s,
            on_stored=lambda events: self.ledger.stored(e.request_id for e in events))
        try:
            # What earlier runs left (kill -9) goes to the store before budgets are read.
            await self.flusher.flush()
        except StorageError as exc:
            log.error("metering: spooled usage records cannot be written yet (%s)", exc)
        self.flusher.start()
        await self.background.start()

    async def _start_writer(self) -> SpoolWriter:
        try:
            own = await asyncio.to_thread(_own_folder, self.root)
            writer = SpoolWriter(own, int(self.config.segment_mb * 1024 * 1024),
                                 on_synced=lambda: self.flusher and self.flusher.wake(),
                                 backlog_limit=int(self.config.memory_backlog_mb * 1024 * 1024),
                                 metrics=self.spool_metrics)
            writer.start()
        except OSError as exc:
            raise StartupError(f"metering: cannot create the usage spool in {self.root} "
                               f"({exc.strerror or exc}); free space there or set "
                               f"metering.spool_dir") from None
        return writer

    async def stop(self) -> None:
        await self.background.stop()
        # Exchanges cut by the server's shutdown are finishing in tasks of their own: their
        # records need the tokenizer and the writer, so those stop only after them.
        if not await self.finishing.wait(STOP_WAIT_S):
            log.error("metering: %d exchanges still unrecorded after %.0f s at shutdown",
                      self.finishing.count, STOP_WAIT_S)
        self.tokenizer.stop()
        if self.flusher is not None:  # memory and spool to the store, while the writer is open
            await self.flusher.stop(STOP_FLUSH_S)
        if self.writer is not None:  # what the store did not take goes to the disk
            await self.writer.close()
        if self.flusher is not None:
            own = self.writer.directory if self.writer is not None else None
            if own is not None:
                # An empty folder goes; one with records left is adopted by the next start.
                await asyncio.to_thread(own.remove if self.flusher.depth == 0 else own.release)

    # --- hooks ------------------------------------------------------------------------------
    async def on_request(self, ex: Exchange) -> None:
        state = ex.state[self.name] = MeterState()
        if ex.operation == "models":
            return
        if self.writer is not None and self.writer.full and \
                self.config.on_backlog_full == "refuse":
            state.recorded = True  # a refusal of our own: nothing to record, nothing kept
            raise _spool_full()
        if ex.identity is None:
            return
        budgets = await self._budgets(ex)
        if not budgets:
            return
        if not self.ledger.synced and self.config.budget_failure_mode == "closed":
            raise _budget_unavailable()
        amount = await self._estimate(ex)
        # From here to the reservation there is no await: concurrent calls cannot slip in.
        over = self.ledger.over(budgets)
        if over is not None:
            raise insufficient_quota(over[0])
        state.scopes = [scope for scope, _ in budgets]
        state.reservation = self.ledger.reserve(state.scopes, amount)

    async def on_chunk(self, ex: Exchange, event: Event) -> None:
        state = ex.state.get(self.name)
        if state is None or state.recorded:
            return
        state.stream_data.append(event.data)
        if is_final(ex.shape, event):
            try:
                await self._record(ex, state)
            except Exception as exc:  # never break the stream; on_complete tries again
                state.recorded = False
                log_crash("metering.on_chunk", exc)

    async def on_complete(self, ex: Exchange) -> None:
        state = ex.state.get(self.name)
        if state is None:
            state = MeterState()
        self.finishing.enter()
        try:
            if not state.recorded and wanted(ex):
                await self._record(ex, state)
        finally:
            self.finishing.leave()
            self.ledger.settle(state.reservation)
        ex.cost_usd = state.cost

    # --- recording --------------------------------------------------------------------------
    async def _record(self, ex: Exchange, state: MeterState) -> None:
        state.recorded = True
        usage, flags = await self._usage(ex, state)
        state.stream_data = []
        cost = Decimal(0)
        if ex.provider is not None:
            price = self.prices.price(ex.provider, ex.provider_model or "")
            if price is None:
                flags.append("unpriced")
            else:
                cost = cost_of(usage, price)
                if unpriced_tools(usage, price):
                    flags.append("unpriced_tool")
        state.cost = ex.cost_usd = cost
        if state.ids is None:
            state.ids = event_id(ex)
        request_id, client_request_id = state.ids
        event = build_event(ex, request_id, client_request_id, usage, cost, flags)
        if event.billable:
            self.ledger.charge(state.scopes, cost, request_id)
        self._write(event.billable, encode(event))

    def _write(self, billable: bool, payload: bytes) -> None:
        """Spool a record (a refused write waits in memory: see the writer); past the memory
        bound, drop what ``on_backlog_full`` says may be dropped, counted and logged."""
        writer = self.writer
        assert writer is not None, "the plugin was not started"
        full = writer.full and (self.config.on_backlog_full == "accept" or not billable)
        if not full and not writer.closed:
            self._losing = False
            writer.write(payload)
            return
        if self.spool_metrics is not None:
            self.spool_metrics.lose(1)
        if not self._losing:
            log.error("metering: usage records are dropped (%s)", "the spool is closed"
                      if writer.closed else "the spool disk refuses them and the memory "
                      "backlog is full: memory_backlog_mb")
        self._losing = True

    async def _usage(self, ex: Exchange, state: MeterState) -> tuple[Usage, list[str]]:
        """The usage to record and its flags: the provider's, completed by an estimate when
        it is missing or the stream was cut short."""
        if ex.provider is None:
            return Usage(), []
        reported = ex.usage
        usage = Usage(reported.prompt_tokens, reported.completion_tokens,
                      reported.cached_tokens, reported.reasoning_tokens, reported.reported,
                      dict(reported.server_tool_uses))
        flags = ["partial"] if ex.stream and "client_disconnected" in ex.flags else []
        cut_short = bool(flags) or "stream_error" in ex.flags
        if usage.reported and not cut_short:
            return usage, flags
        estimated = False
        if not usage.reported or not usage.prompt_tokens:
            usage.prompt_tokens = await self._prompt_tokens(ex.body)
            estimated = True
        produced = await self.tokenizer.count(_answer_texts(ex, state))
        if produced > usage.completion_tokens:
            usage.completion_tokens, estimated = produced, True
        return usage, flags + (["estimated"] if estimated else [])

    async def _prompt_tokens(self, body: dict[str, Any]) -> int:
        tokens = await self.tokenizer.count(estimate.request_texts(body))
        return tokens + estimate.MESSAGE_OVERHEAD * estimate.message_count(body)

    # --- budgets ----------------------------------------------------------------------------
    async def _budgets(self, ex: Exchange) -> list[tuple[Scope, Decimal]]:
        identity = ex.identity
        assert identity is not None
        budgets: list[tuple[Scope, Decimal]] = []
        key_budget = identity.limits.get("budget_usd")
        if key_budget is not None and identity.key_id:
            budgets.append((("key", identity.key_id), Decimal(str(key_budget))))
        try:
            account_budget = await self.accounts.get(identity.account_id)
        except StorageError:
            if self.config.budget_failure_mode == "closed":
                raise _budget_unavailable() from None
            account_budget = None
        if account_budget is not None:
            budgets.append((("account", identity.account_id), account_budget))
        return budgets

    async def _estimate(self, ex: Exchange) -> Decimal:
        """The most this call may cost: prompt tokens (with a margin: other providers'
        tokenizers count differently) and the output ceiling, at the dearest target's price."""
        price, info = self.prices.most_expensive(ex.model)
        if price is None:
            return Decimal(0)  # unpriced models cost 0 and are flagged; nothing to reserve
        prompt = estimate.with_margin(await self._prompt_tokens(ex.body),
                                      self.config.estimate_margin)
        ceiling = estimate.output_ceiling(ex.body) or (info.max_output if info else None)
        return estimated_cost(prompt, ceiling or self.config.default_max_output, price)

    async def load_spend(self, since: datetime) -> dict[Scope, Decimal]:
        """Month-to-date billable spend per key and per account, from the store."""
        store = self.gateway.store
        spend: dict[Scope, Decimal] = {}
        for kind in ("key", "account"):
            for total in await store.usage_totals(group_by=[kind], since=since,
                                                  billable_only=True):
                if total.group[kind] is not None:
                    spend[(kind, str(total.group[kind]))] = total.cost_usd
        return spend


def is_final(shape: str, event: Event) -> bool:
    """Whether ``event`` ends a stream of ``shape`` (cheap: no JSON parsing)."""
    if shape == "openai":
        return event.data == "[DONE]"
    if shape == "anthropic":
        return event.event == "message_stop"
    if shape == "openai-responses":
        return event.event in ("response.completed", "response.incomplete", "response.failed")
    if shape == "gemini":
        return '"finishReason"' in event.data
    return False


def insufficient_quota(kind: str) -> GatewayError:
    return GatewayError(
        429, "insufficient_quota",
        f"You exceeded the monthly budget of {SCOPE_TITLES.get(kind, kind)}; it renews on the "
        f"first day of next month (UTC), or ask the gateway's operator to raise it.",
        code="insufficient_quota")


def _spool_full() -> GatewayError:
    return GatewayError(503, "api_error", "Usage cannot be recorded right now; try again "
                        "shortly.", code="usage_spool_full", headers={"retry-after": "5"})


def _budget_unavailable() -> GatewayError:
    return GatewayError(503, "api_error", "Budgets cannot be checked right now; try again "
                        "shortly.", code="budget_unavailable", headers={"retry-after": "5"})


def _answer_texts(ex: Exchange, state: MeterState) -> list[str]:
    if state.stream_data:
        return [t for data in state.stream_data if data.startswith("{")
                for t in estimate.stream_texts(Event(data).json())]
    return estimate.answer_texts(ex.response) if ex.response is not None else []


def _own_folder(root: Any) -> SpoolDir:
    """A fresh, locked folder for this process (``<pid>-<random>``: pids repeat in
    containers, and a restarted process must not append to a dead one's files)."""
    name = f"{os.getpid()}-{secrets.token_hex(3)}"
    # Made under a hidden name and locked before it gets its real one: another process's
    # orphan scan (which skips hidden names) must never see it unlocked and adopt it.
    hidden = root / f".{name}"
    # Usage records name accounts, keys and client addresses: private, like the database.
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    hidden.mkdir(mode=0o700)
    own = SpoolDir(hidden)
    if not own.lock():
        raise RuntimeError(f"cannot lock the new spool folder {hidden}")
    own.path = hidden.rename(root / name)  # the lock stays: it is on the file, not the name
    return own
