"""Prometheus metrics, one registry per app so that several apps (tests) never collide."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000)
_WAIT_BUCKETS_S = (1, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.triage_latency_ms = Histogram(
            "beacon_triage_latency_ms",
            "Triage time per message",
            ["source"],
            buckets=_LATENCY_BUCKETS_MS,
            registry=r,
        )
        self.triage_levels = Counter(
            "beacon_triage_levels_total", "Triage results by level", ["source", "level"], registry=r
        )
        self.partner_requests = Counter(
            "beacon_partner_requests_total", "Partner triage API calls", ["status"], registry=r
        )
        self.queue_depth = Gauge(
            "beacon_queue_depth", "Waiting sessions by urgency", ["urgency"], registry=r
        )
        self.wait_seconds = Histogram(
            "beacon_wait_seconds",
            "Time from waiting to answered",
            ["urgency"],
            buckets=_WAIT_BUCKETS_S,
            registry=r,
        )
        self.connected_visitors = Gauge(
            "beacon_connected_visitors", "Open visitor sockets", registry=r
        )
        self.connected_volunteers = Gauge(
            "beacon_connected_volunteers", "Open volunteer sockets", registry=r
        )
        self.messages = Counter("beacon_messages_total", "Messages stored", ["sender"], registry=r)
        # A steady rise with no flood going on usually means every visitor looks like one
        # address: a proxy missing from FORWARDED_ALLOW_IPS (docs/operations.md).
        self.sessions_refused = Counter(
            "beacon_sessions_refused_total",
            "New visitor sessions refused by the per-client limit",
            registry=r,
        )
        # How long the accept pacer held new connections (app/core/pacing.py); its count is how
        # many were held. Holds near the 1 s bound mean the instance is overloaded, not paced.
        self.connection_hold_seconds = Histogram(
            "beacon_connection_hold_seconds",
            "Time a new connection waited its turn while chats needed the event loop",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2),
            registry=r,
        )
        # Post-chat survey answers by question (helped, safer) and point (1-5): numbers only.
        self.survey_answers = Counter(
            "beacon_survey_answers_total",
            "Post-chat survey answers",
            ["question", "answer"],
            registry=r,
        )
        self.handoff_attempts = Counter(
            "beacon_handoff_attempts_total",
            "Handoff webhook attempts",
            ["partner", "outcome"],
            registry=r,
        )
