"""Settings from ``BEACON_*`` environment variables (and an optional ``.env``).

Development mode (the default) runs on an embedded SQLite file with generated secrets so that a
newcomer can start the service with one command; production mode refuses to start without the
secrets it needs instead of silently defaulting them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./beacon.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BEACON_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Environment = Environment.development
    database_url: str = DEFAULT_SQLITE_URL
    db_pool_size: int = Field(default=10, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    # After start-up, move every object built so far out of the garbage collector's way
    # (gc.freeze): a full collection over the triage model's tables and SQLAlchemy's mappers
    # took ~100 ms, a pause every chat on the instance felt. Off only for processes that build
    # many apps (the test suite), where frozen objects of earlier apps would never be freed.
    gc_freeze: bool = True
    # `beacon serve` on SIGTERM: at most this long for open handlers to finish after their
    # sockets were told to reconnect (1012), before background work is stopped.
    shutdown_timeout_s: int = Field(default=20, ge=1)
    log_json: bool = True
    # One JSON line per HTTP request (method, path without query string, status; no address).
    access_log: bool = False
    # A client must finish its request line and headers this long after connecting (or after
    # the previous response): slow-header clients cannot hold connections (app/core/server.py).
    http_header_timeout_s: float = Field(default=10.0, gt=0)

    # Chat (SPEC §3, §9)
    max_text_bytes: int = Field(default=4096, ge=1)
    max_frame_bytes: int = Field(default=16384, ge=256)
    hello_timeout_s: float = Field(default=10.0, gt=0)
    visitor_grace_s: float = Field(default=600.0, ge=0)
    ws_rate_limit_per_s: float = Field(default=5.0, gt=0)
    ws_rate_limit_burst: int = Field(default=20, ge=1)
    resume_token_ttl_s: float = Field(default=86400.0, gt=0)
    # A client that keeps sending after rate_limited errors is closed (1008) past this many.
    ws_flood_disconnect_after: int = Field(default=40, ge=1)
    # New sessions per client address (app/chat/admission; resuming is never limited): a burst,
    # refilled at a steady rate. Per instance, in memory. Trade-offs in docs/operations.md.
    session_open_burst: int = Field(default=20, ge=1)
    session_open_per_min: float = Field(default=20.0, gt=0)
    # While people are chatting and the event loop's thread used more than this share of its
    # time over the last few ms, new connections wait their turn (at most accept_max_hold_s,
    # never refused), so a flood of handshakes cannot slow the chats under way
    # (app/core/pacing.py; trade-offs in docs/operations.md).
    accept_pacing: bool = True
    accept_busy_share: float = Field(default=0.5, gt=0, le=1)
    accept_max_hold_s: float = Field(default=1.0, ge=0)
    # "Chatting": a message was sent on this instance within this many seconds.
    accept_contended_window_s: float = Field(default=2.0, gt=0)
    # A session whose visitor never spoke and is gone is abandoned after this long (the grace
    # period is for people who did speak); it never was in the queue.
    silent_session_ttl_s: float = Field(default=60.0, gt=0)
    # Group commit (SPEC §10): messages arriving while a commit runs share the next one.
    chat_commit_max_batch: int = Field(default=256, ge=1)
    chat_commit_linger_ms: float = Field(default=0.0, ge=0)
    chat_commit_workers: int = Field(default=2, ge=1)
    # Messages of conversations under way stored by one guarded statement instead of a locked
    # transaction when this instance's memory of the session rows allows (Postgres only;
    # app/chat/commit_fast.py). Off: every batch takes the locked path.
    chat_commit_one_statement: bool = True
    # Earlier visitor messages of the session given to triage as context.
    chat_triage_context: int = Field(default=10, ge=0)
    # Triage of chat messages in a worker process of its own (app/triage/process.py): its Python
    # work (tokenizer, rule tables) then runs beside the event loop instead of taking turns with
    # it for the GIL. Measured with a new text in every message: saturation 313-314 -> 459-488
    # msg/s on 2 cores (docs/performance.md, "Triage in a worker process"). Costs a second
    # engine's memory (~180 MB, up to ~450 MB with its caches full) and a second or two at start;
    # off on a one-core machine, where there is no other core to run on.
    chat_triage_process: bool = True
    # Queue position / wait estimate for waiting visitors, and the abandonment sweeper.
    queue_refresh_s: float = Field(default=2.0, gt=0)
    queue_rate_window_s: float = Field(default=900.0, gt=0)
    visitor_sweep_interval_s: float = Field(default=30.0, gt=0)

    # Partner triage API (SPEC §6)
    partner_rate_limit_per_min: int = Field(default=600, ge=1)
    triage_batch_max: int = Field(default=100, ge=1)
    triage_context_max: int = Field(default=50, ge=0)
    # Bounds the bytes read (and the text triaged) per call before any JSON parsing happens.
    triage_max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # Routing and escalation (SPEC §4, §5)
    offer_timeout_s: float = Field(default=20.0, gt=0)
    # After this long a none/low session ranks with a fresh moderate one (app/routing/priority).
    queue_wait_ceiling_s: float = Field(default=600.0, gt=0)
    volunteer_token_ttl_s: float = Field(default=30 * 86400.0, gt=0)
    volunteer_default_capacity: int = Field(default=3, ge=0)
    # Slots a high/imminent chat occupies (1: every chat is one slot). Never a reason to turn an
    # urgent person away: a volunteer with any free slot may take one, which then holds as many
    # of its slots as are free (load never passes capacity) and picks up the rest as others
    # free up while it lasts (app/routing/assignments).
    high_urgency_slots: int = Field(default=2, ge=1, le=100)
    # No frame for this long marks a volunteer offline; after the grace their chats are requeued.
    volunteer_heartbeat_timeout_s: float = Field(default=30.0, gt=0)
    volunteer_grace_s: float = Field(default=60.0, ge=0)
    # The volunteer socket's own frame limit: one person answering several chats, and resending
    # an outbox plus a `sync` per chat after a reconnect, needs more than a visitor's 5/s; a
    # flood is still refused past the burst and closed (1008) past the strikes.
    volunteer_ws_rate_limit_per_s: float = Field(default=20.0, gt=0)
    volunteer_ws_rate_limit_burst: int = Field(default=100, ge=1)
    volunteer_ws_flood_disconnect_after: int = Field(default=200, ge=1)
    # A volunteer who declined (or let expire) a session is not offered it again this soon.
    offer_decline_cooldown_s: float = Field(default=120.0, ge=0)
    # A session waits this long for a volunteer speaking its language before anyone may take it.
    language_fallback_s: float = Field(default=120.0, ge=0)
    routing_interval_s: float = Field(default=1.0, gt=0)
    # With nobody waiting and no offer open, every change that could need routing comes with a
    # bus hint, so the pass runs only this often (for heartbeat timeouts and the grace period:
    # never less often than a quarter of the heartbeat timeout or half the grace).
    routing_idle_interval_s: float = Field(default=5.0, gt=0)
    handoff_deadline_s: float = Field(default=60.0, gt=0)
    partners_file: Path | None = None

    # Escalation and hotline handoff (SPEC §5; app/escalation)
    # `high` gets the safety message, alert and its own (longer) clock only when enabled.
    escalate_high: bool = False
    handoff_deadline_high_s: float = Field(default=300.0, gt=0)
    # Delivery to a partner is retried (backoff + jitter) until acknowledged or this long.
    handoff_delivery_deadline_s: float = Field(default=120.0, gt=0)
    handoff_retry_base_s: float = Field(default=0.5, gt=0)
    handoff_retry_max_s: float = Field(default=15.0, gt=0)
    handoff_request_timeout_s: float = Field(default=5.0, gt=0)
    # Circuit breaker per partner: open after this many consecutive failures, probe after cool-down.
    handoff_breaker_threshold: int = Field(default=3, ge=1)
    handoff_breaker_cooldown_s: float = Field(default=30.0, gt=0)
    # Partner status callbacks: signature timestamps older/newer than this are refused.
    handoff_callback_tolerance_s: float = Field(default=300.0, gt=0)
    # How often the escalation clock looks for due work (it is also woken by urgency rises).
    escalation_tick_s: float = Field(default=0.25, gt=0)
    # With no handoff open, nothing in flight and nothing done by the last pass, new work always
    # comes with a hint (an urgency rise, a session back in the queue, a handoff requested or a
    # partner's callback), so the clock looks only this often.
    escalation_idle_tick_s: float = Field(default=5.0, gt=0)
    # Told to partners so they know where to send status callbacks (optional).
    public_base_url: str | None = None

    # Retention (SPEC §9; app/retention): message text, wrap-up notes and the partner request
    # log older than this are purged by every instance every interval (0: only by the CLI).
    retention_days: int = Field(default=90, ge=1)
    retention_interval_s: float = Field(default=3600.0, ge=0)
    # Rows per purge transaction: keeps row locks short on a busy messages table.
    retention_batch_size: int = Field(default=2000, ge=1)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @model_validator(mode="after")
    def _production_needs_explicit_configuration(self) -> Self:
        # Production must never silently fall back to the embedded development database.
        # (`beacon serve` also refuses production without a partners file: see app/main.py.)
        if self.env is Environment.production and (
            "database_url" not in self.model_fields_set or self.is_sqlite
        ):
            raise ValueError("BEACON_ENV=production needs BEACON_DATABASE_URL (Postgres)")
        return self


def get_settings() -> Settings:
    return Settings()
