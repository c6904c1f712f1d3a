"""Application factory. The lifespan builds every engine, client and background task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.bus import Bus, create_bus
from app.chat.admission import SessionOpenLimiter
from app.chat.committer import MessageCommitter
from app.chat.presence import VisitorPresence
from app.core.config import Environment, Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.migrate import upgrade_to_head
from app.escalation.partners import load_partners
from app.escalation.worker import EscalationWorker
from app.retention.worker import RetentionWorker
from app.routers import chat_ws, dashboard, handoffs, health, pages, triage_api, volunteer_ws
from app.routing.at_risk import LostVisitorWatch
from app.routing.queue import QueueMonitor
from app.routing.worker import RoutingWorker
from app.triage import default_engine

log = structlog.get_logger(__name__)


@dataclass
class AppState:
    """Everything the lifespan builds; routers reach it through ``request.app.state.beacon``."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: Metrics
    bus: Bus
    # The one path by which a chat message gets its seq and is committed (group commit).
    committer: MessageCommitter
    # Offers, offer/presence timeouts and requeues; every instance runs one (DB claims decide).
    routing: RoutingWorker
    # Queue position / wait estimate pushed to waiting visitors' sockets.
    queue: QueueMonitor
    # Visitor sockets on this instance: presence heartbeat and the abandonment sweeper.
    visitors: VisitorPresence
    # New sessions per client address on this instance (SPEC §9); resuming is never limited.
    session_opens: SessionOpenLimiter
    # Safety messages, supervisor alerts, the handoff clock and partner webhooks (SPEC §5).
    escalation: EscalationWorker
    # High+ visitors gone past the grace: supervisors' at-risk list and alert (SPEC §3).
    lost_visitors: LostVisitorWatch
    # Periodic purge of transcript text past the retention period (SPEC §9).
    retention: RetentionWorker


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A bad partners file must stop the start, before anything else is built; in production
        # a missing one too: without partners an unanswered imminent visitor has nowhere to go.
        if settings.env is Environment.production and settings.partners_file is None:
            raise RuntimeError("BEACON_ENV=production needs BEACON_PARTNERS_FILE")
        partners = load_partners(settings.partners_file)
        if settings.is_sqlite:
            # The embedded default must just work: bring the file to head on start.
            await asyncio.to_thread(upgrade_to_head, settings.database_url)
        # Each part is stopped in reverse order of start, also when a later part fails to start.
        async with AsyncExitStack() as stack:
            engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
            stack.push_async_callback(engine.dispose)
            sessionmaker = create_sessionmaker(engine)
            bus = create_bus(settings.database_url, engine)
            await bus.start()
            stack.push_async_callback(bus.stop)
            # Stopped before the bus and the database: submitted messages are committed (and
            # acked) first.
            # The triage model (~150 MB with its encoder, ~1 s to load) is loaded before the
            # first frame is accepted, not by the first visitor message, which would wait for it.
            await asyncio.to_thread(default_engine)
            committer = MessageCommitter(
                sessionmaker,
                bus,
                metrics,
                max_batch=settings.chat_commit_max_batch,
                linger_s=settings.chat_commit_linger_ms / 1000,
                workers=settings.chat_commit_workers,
                context_size=settings.chat_triage_context,
            )
            await committer.start()
            stack.push_async_callback(committer.stop)
            routing = RoutingWorker(
                sessionmaker=sessionmaker, settings=settings, bus=bus, metrics=metrics
            )
            await routing.start()
            stack.push_async_callback(routing.stop)
            queue = QueueMonitor(
                sessionmaker,
                bus,
                ceiling_s=settings.queue_wait_ceiling_s,
                refresh_s=settings.queue_refresh_s,
                rate_window_s=settings.queue_rate_window_s,
            )
            await queue.start()
            stack.push_async_callback(queue.stop)
            visitors = VisitorPresence(
                sessionmaker,
                bus,
                grace_s=settings.visitor_grace_s,
                sweep_interval_s=settings.visitor_sweep_interval_s,
                silent_ttl_s=settings.silent_session_ttl_s,
            )
            await visitors.start()
            stack.push_async_callback(visitors.stop)
            partner_http = httpx.AsyncClient(
                timeout=settings.handoff_request_timeout_s, follow_redirects=False
            )
            stack.push_async_callback(partner_http.aclose)
            escalation = EscalationWorker(
                sessionmaker=sessionmaker,
                settings=settings,
                bus=bus,
                committer=committer,
                metrics=metrics,
                partners=partners,
                http=partner_http,
            )
            await escalation.start()
            stack.push_async_callback(escalation.stop)
            lost_visitors = LostVisitorWatch(
                sessionmaker=sessionmaker,
                bus=bus,
                grace_s=settings.visitor_grace_s,
                interval_s=settings.visitor_sweep_interval_s,
                is_local=visitors.is_local,
            )
            await lost_visitors.start()
            stack.push_async_callback(lost_visitors.stop)
            retention = RetentionWorker(
                sessionmaker=sessionmaker, settings=settings, metrics=metrics
            )
            await retention.start()
            stack.push_async_callback(retention.stop)
            app.state.beacon = AppState(
                settings=settings,
                engine=engine,
                sessionmaker=sessionmaker,
                metrics=metrics,
                bus=bus,
                committer=committer,
                routing=routing,
                queue=queue,
                visitors=visitors,
                session_opens=SessionOpenLimiter(
                    burst=settings.session_open_burst,
                    per_min=settings.session_open_per_min,
                    # At most half the pool for sessions that have not spoken yet.
                    concurrency=max(1, settings.db_pool_size // 2),
                ),
                escalation=escalation,
                lost_visitors=lost_visitors,
                retention=retention,
            )
            log.info("startup", env=settings.env.value, dialect=engine.dialect.name)
            yield
        log.info("shutdown")

    app = FastAPI(
        title="Beacon",
        version="1",
        summary="Crisis-chat triage: the most urgent person reaches a human first.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(triage_api.router)
    app.include_router(volunteer_ws.router)
    app.include_router(dashboard.router)
    app.include_router(chat_ws.router)
    app.include_router(handoffs.router)
    app.include_router(pages.router)
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory app.main:create_app_from_env``."""
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
