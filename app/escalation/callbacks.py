"""A partner's status callback: who signed it, what it says, and what it changes.

The signature is checked against every partner this handoff was (or could have been) sent to,
exactly like our own webhook is signed (``app.escalation.signing``); only then is the body
parsed, so an unsigned caller learns nothing about the shape we expect.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import Actor
from app.bus import Bus
from app.chat.lifecycle import transition
from app.core.db import utcnow
from app.domain import session as session_states
from app.domain.handoff import CALLBACK, HandoffStatus
from app.domain.session import SessionStatus
from app.escalation import repository
from app.escalation.alerts import alert_supervisors, audit
from app.escalation.errors import (
    SIGNATURE_ERRORS,
    HandoffNotFound,
    InvalidCallback,
    InvalidTransition,
)
from app.escalation.lifecycle import advance, may_become
from app.escalation.models import Handoff
from app.escalation.partners import PartnersConfig, select_partners
from app.escalation.repository import write_first
from app.escalation.schemas import PartnerStatus
from app.escalation.signing import SignatureError, verify
from app.escalation.templates import MessageKind


async def signer_of(
    db: AsyncSession,
    partners: PartnersConfig | None,
    handoff: Handoff,
    *,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float,
) -> str:
    """The name of the partner whose secret signed ``body``; raises the matching 401 if none
    of those allowed to speak for this handoff did."""
    locale = await repository.session_locale(db, handoff.session_id)
    allowed = await repository.partners_of(db, handoff)
    allowed |= {p.name for p in select_partners(partners, locale, handoff.level)}
    error: SignatureError | None = None
    for partner in partners.partners if partners else []:
        if partner.name not in allowed:
            continue
        try:
            verify(
                partner.secret.get_secret_value(),
                timestamp=headers.get("X-Beacon-Timestamp"),
                signature=headers.get("X-Beacon-Signature"),
                body=body,
                tolerance_s=tolerance_s,
            )
        except SignatureError as exc:
            error = exc
            continue
        return partner.name
    failure = error or SignatureError("invalid_signature", "no partner may sign this")
    raise SIGNATURE_ERRORS[failure.code](failure.detail)


def parse(body: bytes) -> PartnerStatus:
    try:
        return PartnerStatus.model_validate_json(body)
    except ValidationError:
        raise InvalidCallback(
            'body must be {"status": "accepted|connected|failed", "reference": "..."}'
        ) from None


async def receive(
    db: AsyncSession,
    bus: Bus,
    partners: PartnersConfig | None,
    handoff_id: uuid.UUID,
    *,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float,
) -> tuple[Handoff, PartnerStatus]:
    """Authenticate, parse and apply one callback (in the caller's transaction)."""
    handoff = await repository.get_handoff(db, handoff_id)
    signer = await signer_of(
        db, partners, handoff, headers=headers, body=body, tolerance_s=tolerance_s
    )
    update = parse(body)
    handoff = await apply_partner_status(
        db,
        bus,
        handoff_id=handoff_id,
        status=update.status,
        partner=signer,
        reference=update.reference,
    )
    return handoff, update


async def _lock_handoff(db: AsyncSession, handoff_id: uuid.UUID) -> Handoff:
    await write_first(db)
    handoff = (
        await db.execute(
            select(Handoff)
            .where(Handoff.id == handoff_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if handoff is None:
        raise HandoffNotFound("no such handoff")
    return handoff


async def apply_partner_status(
    db: AsyncSession,
    bus: Bus,
    *,
    handoff_id: uuid.UUID,
    status: str,
    partner: str,
    reference: str | None,
    now: datetime | None = None,
) -> Handoff:
    """Apply what the partner says about a handoff; repeated or late (out-of-order) callbacks
    change nothing, anything the table does not allow is a 409 ``invalid_transition``."""
    now = now or utcnow()
    handoff = await _lock_handoff(db, handoff_id)
    audit(
        db,
        "handoff_callback",
        handoff.session_id,
        actor_type="partner",
        actor_id=partner,
        handoff_id=str(handoff.id),
        status=status,
        previous=handoff.status,
        reference=reference,
    )
    target = HandoffStatus(status)
    if handoff.status == target or (
        handoff.status == HandoffStatus.connected and status == "accepted"
    ):
        return handoff  # a repeated (or late, out-of-order) callback: nothing new
    if target not in CALLBACK or not may_become(handoff, target):
        raise InvalidTransition(f"a {handoff.status} handoff cannot become {status}")
    first_success = handoff.status not in ("accepted", "connected") and status != "failed"
    advance(handoff, target, now)
    handoff.partner = partner
    handoff.partner_status_at = now
    handoff.next_attempt_at = None
    if reference is not None:
        handoff.partner_reference = reference
    reason = await _move_session(db, bus, handoff, target, partner, first_success=first_success)
    await alert_supervisors(
        db,
        bus,
        handoff.session_id,
        handoff.level,
        reason,
        handoff_id=str(handoff.id),
        partner=partner,
        partner_status=status,
    )
    return handoff


async def _move_session(
    db: AsyncSession,
    bus: Bus,
    handoff: Handoff,
    status: HandoffStatus,
    partner: str,
    *,
    first_success: bool,
) -> str:
    """The session follows the partner: handed off while they have it, back to the queue at its
    old place (``waiting_since`` is kept) when they fail, so a human must take it. Returns the
    supervisors' alert reason."""
    actor = Actor("partner", partner)
    if status == HandoffStatus.failed:
        handoff.notice_due = MessageKind.handoff_failed.value
        await transition(
            db,
            handoff.session_id,
            SessionStatus.waiting,
            reason="handoff_failed",
            sources=[SessionStatus.handed_off],
            actor=actor,
            bus=bus,
        )
        return "handoff_failed"
    if first_success:
        handoff.notice_due = MessageKind.handed_off.value
    await transition(
        db,
        handoff.session_id,
        SessionStatus.handed_off,
        reason=f"partner_{status.value}",
        sources=session_states.LIVE,
        actor=actor,
        bus=bus,
    )
    return "handed_off" if status == HandoffStatus.accepted else "handoff_connected"
