"""Application factory. The lifespan builds every engine, client and background task.

What it builds is typed in :mod:`app.state` (nothing imports this module but the CLI and the
tests). Each part is started in order and stopped in reverse, also when a later one fails.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any, Protocol, TypeVar

import httpx
import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import Bus, create_bus
from app.chat.admission import SessionOpenLimiter
from app.chat.committer import MessageCommitter, Triage
from app.chat.opener import SessionOpener
from app.chat.presence import VisitorPresence
from app.chat.queue import QueueMonitor
from app.core.config import Environment, Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.core.direct_sockets import DirectSockets, direct_routes
from app.core.errors import BELOW_THE_APP, error_responses, install_error_handlers
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.migrate import upgrade_to_head
from app.core.pacing import AcceptPacer
from app.core.server import PACER_STATE_KEY
from app.escalation.partners import PartnersConfig, load_partners
from app.escalation.worker import EscalationWorker
from app.retention.worker import RetentionWorker
from app.routers import (
    chat_rest,
    chat_ws,
    dashboard,
    handoffs,
    health,
    pages,
    resources,
    supervision,
    triage_api,
    volunteer_ws,
)
from app.routing.at_risk import LostVisitorWatch
from app.routing.dispatch import offer_in_commit
from app.routing.worker import RoutingWorker
from app.state import BeaconState
from app.triage import Engine, load_engine
from app.triage.process import TriageProcess, other_cores

log = structlog.get_logger(__name__)

__all__ = ["create_app", "create_app_from_env"]


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


_T = TypeVar("_T", bound=_Startable)


async def _started(stack: AsyncExitStack, part: _T) -> _T:
    await part.start()
    stack.push_async_callback(part.stop)
    return part


def _check_start(settings: Settings) -> PartnersConfig | None:
    """A bad partners file must stop the start, before anything else is built; in production a
    missing one too: without partners an unanswered imminent visitor has nowhere to go."""
    if settings.env is Environment.production and settings.partners_file is None:
        raise RuntimeError("BEACON_ENV=production needs BEACON_PARTNERS_FILE")
    return load_partners(settings.partners_file)


async def _chat_triage(stack: AsyncExitStack, settings: Settings, engine: Engine) -> Triage:
    """The committer's triage: in a worker process on another core when it may use one."""
    if not (settings.chat_triage_process and other_cores()):
        return engine.assess_many
    worker = TriageProcess()
    await asyncio.to_thread(worker.start)
    # Pushed before the committer, so closed after it: its last batches are still triaged.
    stack.callback(worker.close)
    return worker.assess_many


async def _build(
    stack: AsyncExitStack,
    settings: Settings,
    metrics: Metrics,
    partners: PartnersConfig | None,
    triage: Engine,
) -> BeaconState:
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    stack.push_async_callback(engine.dispose)
    sessionmaker = create_sessionmaker(engine)
    bus = await _started(stack, create_bus(settings.database_url, engine))
    chat_triage = await _chat_triage(stack, settings, triage)
    # Stopped before the bus and the database: submitted messages are committed (and acked)
    # first.
    committer = await _started(
        stack,
        MessageCommitter(
            sessionmaker,
            bus,
            metrics,
            max_batch=settings.chat_commit_max_batch,
            linger_s=settings.chat_commit_linger_ms / 1000,
            workers=settings.chat_commit_workers,
            context_size=settings.chat_triage_context,
            triage=chat_triage,
            # An imminent message and its offer to a free volunteer commit together.
            route=partial(offer_in_commit, settings=settings, bus=bus),
            one_statement=settings.chat_commit_one_statement,
        ),
    )
    opener = await _started(
        stack, SessionOpener(sessionmaker, bus, token_ttl_s=settings.resume_token_ttl_s)
    )
    routing = await _started(
        stack, RoutingWorker(sessionmaker=sessionmaker, settings=settings, bus=bus, metrics=metrics)
    )
    queue = await _started(stack, _queue_monitor(sessionmaker, bus, settings))
    visitors = await _started(stack, _visitor_presence(sessionmaker, bus, settings))
    escalation = await _started(
        stack,
        await _escalation(stack, sessionmaker, bus, committer, metrics, settings, partners),
    )
    lost_visitors = await _started(
        stack,
        LostVisitorWatch(
            sessionmaker=sessionmaker,
            bus=bus,
            grace_s=settings.visitor_grace_s,
            interval_s=settings.visitor_sweep_interval_s,
            is_local=visitors.is_local,
        ),
    )
    retention = await _started(
        stack, RetentionWorker(sessionmaker=sessionmaker, settings=settings, metrics=metrics)
    )
    accept_pacer = _accept_pacer(settings, committer, metrics)
    if accept_pacer is not None:
        stack.push_async_callback(accept_pacer.close)
    return BeaconState(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        metrics=metrics,
        bus=bus,
        triage=triage,
        committer=committer,
        routing=routing,
        queue=queue,
        visitors=visitors,
        session_opens=_session_opens(settings),
        opener=opener,
        escalation=escalation,
        lost_visitors=lost_visitors,
        retention=retention,
        accept_pacer=accept_pacer,
    )


def _accept_pacer(
    settings: Settings, committer: MessageCommitter, metrics: Metrics
) -> AcceptPacer | None:
    if not settings.accept_pacing:
        return None
    return AcceptPacer(
        busy_share=settings.accept_busy_share,
        max_hold_s=settings.accept_max_hold_s,
        contended=partial(committer.talked_within, settings.accept_contended_window_s),
        observe_hold=metrics.connection_hold_seconds.observe,
    )


def _queue_monitor(
    sessionmaker: async_sessionmaker[AsyncSession], bus: Bus, settings: Settings
) -> QueueMonitor:
    return QueueMonitor(
        sessionmaker,
        bus,
        ceiling_s=settings.queue_wait_ceiling_s,
        refresh_s=settings.queue_refresh_s,
        rate_window_s=settings.queue_rate_window_s,
    )


def _visitor_presence(
    sessionmaker: async_sessionmaker[AsyncSession], bus: Bus, settings: Settings
) -> VisitorPresence:
    return VisitorPresence(
        sessionmaker,
        bus,
        grace_s=settings.visitor_grace_s,
        sweep_interval_s=settings.visitor_sweep_interval_s,
        silent_ttl_s=settings.silent_session_ttl_s,
    )


async def _escalation(
    stack: AsyncExitStack,
    sessionmaker: async_sessionmaker[AsyncSession],
    bus: Bus,
    committer: MessageCommitter,
    metrics: Metrics,
    settings: Settings,
    partners: PartnersConfig | None,
) -> EscalationWorker:
    partner_http = httpx.AsyncClient(
        timeout=settings.handoff_request_timeout_s, follow_redirects=False
    )
    stack.push_async_callback(partner_http.aclose)
    return EscalationWorker(
        sessionmaker=sessionmaker,
        settings=settings,
        bus=bus,
        committer=committer,
        metrics=metrics,
        partners=partners,
        http=partner_http,
    )


def _session_opens(settings: Settings) -> SessionOpenLimiter:
    return SessionOpenLimiter(
        burst=settings.session_open_burst,
        per_min=settings.session_open_per_min,
    )


def create_app(
    settings: Settings | None = None, *, triage: Callable[[], Engine] = load_engine
) -> FastAPI:
    """``triage`` builds the engine (tests pass one that shares an engine between apps)."""
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        partners = _check_start(settings)
        if settings.is_sqlite:
            # The embedded default must just work: bring the file to head on start.
            await asyncio.to_thread(upgrade_to_head, settings.database_url)
        # The triage model (~150 MB with its encoder, ~1 s to load) is loaded before the first
        # frame is accepted, not by the first visitor message, which would wait for it.
        engine = await asyncio.to_thread(triage)
        async with AsyncExitStack() as stack:
            state = await _build(stack, settings, metrics, partners, engine)
            app.state.beacon = state
            if settings.gc_freeze:
                # Everything built so far (the triage model's tables, SQLAlchemy's mappers, the
                # routes) lives as long as the process: out of the collector's way, so a full
                # collection walks only what requests made and never pauses a chat for long.
                gc.collect()
                gc.freeze()
            log.info("startup", env=settings.env.value, dialect=state.engine.dialect.name)
            # The lifespan state reaches every connection's protocol (app/core/server.py).
            yield {} if state.accept_pacer is None else {PACER_STATE_KEY: state.accept_pacer}
        log.info("shutdown")

    app = FastAPI(
        title="Beacon",
        version="1",
        summary="Crisis-chat triage: the most urgent person reaches a human first.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    routers = (
        health,
        triage_api,
        volunteer_ws,
        dashboard,
        resources,
        supervision,
        chat_ws,
        chat_rest,
        handoffs,
        pages,
    )
    for router in routers:
        # A route's own 400 (its documented codes) wins over the protocol's.
        app.include_router(router.router, responses=error_responses(*BELOW_THE_APP))
    # The two sockets never reach the router (app/core/direct_sockets.py).
    app.add_middleware(
        DirectSockets,
        routes=direct_routes(route for router in routers for route in router.router.routes),
    )
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory app.main:create_app_from_env``."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
