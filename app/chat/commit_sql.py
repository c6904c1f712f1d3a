"""The group commit's statements on Postgres (app/chat/committer.py runs them)."""

from __future__ import annotations

from sqlalchemy import TextClause, bindparam, text

from app.core.db import UTCDateTime

# The hot path on Postgres is ONE statement after the lock: the INSERT, the sessions' new
# last_seq and the bus NOTIFY ride together as CTEs (each was a round trip of its own, and the
# event loop's turn around it). Fixed statement texts over column arrays, so each is parsed and
# planned once per connection whatever the batch size (a VALUES list would be a new statement
# for every batch size). Data-modifying CTEs always run to completion; the NOTIFY one runs
# because the final SELECT reads it. Keep in step with app/chat/models.py.
INSERT_COLUMNS = (
    "session_id",
    "seq",
    "sender",
    "sender_id",
    "kind",
    "client_msg_id",
    "text",
    "level",
    "score",
    "model_version",
    "triage_ms",
)
_INSERT_ROWS = """
        INSERT INTO messages (sent_at, session_id, seq, sender, sender_id, kind, client_msg_id,
                              text, level, score, signals, model_version, triage_ms)
        SELECT :sent_at, m.session_id, m.seq, m.sender, m.sender_id, m.kind, m.client_msg_id,
               m.text, m.level, m.score, CAST(m.signals AS jsonb), m.model_version, m.triage_ms
        FROM unnest(
            CAST(:a_session_id AS uuid[]), CAST(:a_seq AS integer[]),
            CAST(:a_sender AS varchar[]), CAST(:a_sender_id AS varchar[]),
            CAST(:a_kind AS varchar[]), CAST(:a_client_msg_id AS varchar[]),
            CAST(:a_text AS text[]), CAST(:a_level AS smallint[]), CAST(:a_score AS float8[]),
            CAST(:a_signals AS text[]), CAST(:a_model_version AS varchar[]),
            CAST(:a_triage_ms AS float8[])
        ) AS m(session_id, seq, sender, sender_id, kind, client_msg_id, text,
               level, score, signals, model_version, triage_ms)"""
_INSERTED = f"""
    inserted AS ({_INSERT_ROWS}
        ON CONFLICT (session_id, sender, client_msg_id) DO NOTHING
        RETURNING seq
    ),
    moved AS (
        UPDATE chat_sessions AS s SET last_seq = v.last_seq, updated_at = :now
        FROM unnest(CAST(:ids AS uuid[]), CAST(:seqs AS integer[])) AS v(id, last_seq)
        WHERE s.id = v.id
    )"""  # noqa: S608 - this module's constants only
_NOTIFIED = """,
    notified AS (
        SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS t(p)
    )"""


def _store(notify: bool) -> TextClause:
    notified = "(SELECT count(*) FROM notified)" if notify else "0"
    return text(  # built from this module's constants only: no input reaches the text
        f"WITH {_INSERTED}{_NOTIFIED if notify else ''}\n"  # noqa: S608
        f"SELECT (SELECT count(*) FROM inserted) AS stored, {notified} AS notified"
    ).bindparams(bindparam("sent_at", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))


STORE = _store(notify=False)
STORE_AND_NOTIFY = _store(notify=True)

# The one-statement commit (app/chat/commit_fast.py), run with no transaction around it: each
# session's last_seq moves only if its row still is what this process last committed (last_seq,
# status, urgency: what the plan read), and only the messages and notifications of the sessions
# that moved are stored and sent. A session another writer touched meanwhile is left as it was,
# for the locked path. The rows are locked first, in id order as the locked path locks them (two
# statements, or a statement and a locked transaction, over overlapping sessions would otherwise
# lock in whatever order their plans visit the rows, and could deadlock); the UPDATE's guard is
# re-checked on the newest row version after such a wait, so a stale hint can never store a seq
# twice or leave a gap. No
# ON CONFLICT here: a resend of a stored client_msg_id fails the whole statement (nothing is
# stored) and the batch goes the locked way, which answers resends.
_GUARDED = f"""
    locked AS MATERIALIZED (
        SELECT id FROM chat_sessions WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE
    ),
    moved AS (
        UPDATE chat_sessions AS s SET last_seq = v.last_seq, updated_at = :now
        FROM unnest(
            CAST(:ids AS uuid[]), CAST(:expected AS integer[]), CAST(:seqs AS integer[]),
            CAST(:statuses AS varchar[]), CAST(:urgencies AS smallint[])
        ) AS v(id, expected, last_seq, status, urgency)
        WHERE s.id = v.id AND s.id IN (SELECT id FROM locked)
              AND s.last_seq = v.expected AND s.status = v.status AND s.urgency = v.urgency
        RETURNING s.id
    ),
    inserted AS ({_INSERT_ROWS}
        WHERE m.session_id IN (SELECT id FROM moved)
        RETURNING seq
    )"""  # noqa: S608 - this module's constants only
_GUARDED_NOTIFIED = """,
    notified AS (
        SELECT pg_notify(:channel, t.p)
        FROM unnest(CAST(:payloads AS text[]), CAST(:payload_sessions AS uuid[])) AS t(p, sid)
        WHERE t.sid IN (SELECT id FROM moved)
    )"""


# The sessions whose last_seq had moved on, with the value found (the newest committed one, if
# the statement waited for a lock): some writer stored messages in them. If not this process
# (its own commits are in its memory), another instance writes in that conversation too. A
# status or urgency that moved (a claim, a close) is a one-off and is not reported here.
_OUTPACED = """ARRAY(
        SELECT s.id::text || ':' || s.last_seq FROM chat_sessions AS s
        JOIN unnest(CAST(:ids AS uuid[]), CAST(:expected AS integer[])) AS e(id, expected)
          ON s.id = e.id
        WHERE s.last_seq <> e.expected
    )"""


def _guarded(notify: bool) -> TextClause:
    notified = "(SELECT count(*) FROM notified)" if notify else "0"
    return text(  # built from this module's constants only: no input reaches the text
        f"WITH {_GUARDED}{_GUARDED_NOTIFIED if notify else ''}\n"  # noqa: S608
        "SELECT ARRAY(SELECT id FROM moved) AS moved, (SELECT count(*) FROM inserted) AS stored,"
        f" {notified} AS notified, {_OUTPACED} AS outpaced"
    ).bindparams(bindparam("sent_at", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))


GUARDED_STORE = _guarded(notify=False)
GUARDED_STORE_AND_NOTIFY = _guarded(notify=True)
