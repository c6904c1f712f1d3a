"""The frame parser is a pure function: table-driven cases plus hypothesis fuzzing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.chat import frames
from app.chat.frames import ErrorCode, FrameError, parse_client_frame

LIMIT = 4096


def parse(raw: str) -> frames.ClientFrame:
    return parse_client_frame(raw, max_text_bytes=LIMIT)


def code_of(raw: str) -> ErrorCode:
    with pytest.raises(FrameError) as info:
        parse(raw)
    return info.value.code


def test_valid_frames() -> None:
    hello = parse('{"type":"hello","resume_token":null,"last_seq":null,"locale":"en"}')
    assert isinstance(hello, frames.HelloFrame)
    assert hello.locale == "en"
    resumed = parse('{"type":"hello","resume_token":"abc","last_seq":7,"channel":"ios"}')
    assert isinstance(resumed, frames.HelloFrame)
    assert (resumed.resume_token, resumed.last_seq, resumed.channel) == ("abc", 7, "ios")
    message = parse('{"type":"message","client_msg_id":"m-1","text":"hi 👋"}')
    assert isinstance(message, frames.MessageFrame)
    assert message.text == "hi 👋"
    assert isinstance(parse('{"type":"ping"}'), frames.PingFrame)
    assert isinstance(parse('{"type":"typing"}'), frames.TypingFrame)
    assert isinstance(parse('{"type":"close"}'), frames.CloseFrame)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert isinstance(parse('{"type":"ping","sent_by":"v2-client"}'), frames.PingFrame)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", ErrorCode.invalid_json),
        ("{", ErrorCode.invalid_json),
        ('{"type":"ping"} trailing', ErrorCode.invalid_json),
        ('{"type":"message","client_msg_id":"a","text":"\\ud800"}', ErrorCode.invalid_json),
        ("[" * 10_000 + "]" * 10_000, ErrorCode.invalid_json),
        ("null", ErrorCode.invalid_frame),
        ('"ping"', ErrorCode.invalid_frame),
        ('{"kind":"ping"}', ErrorCode.invalid_frame),
        ('{"type":"pong"}', ErrorCode.unknown_frame_type),
        ('{"type":5}', ErrorCode.unknown_frame_type),
        ('{"type":"message","text":"x"}', ErrorCode.invalid_frame),
        ('{"type":"message","client_msg_id":7,"text":"x"}', ErrorCode.invalid_frame),
        ('{"type":"message","client_msg_id":"","text":"x"}', ErrorCode.invalid_frame),
        ('{"type":"message","client_msg_id":"a","text":null}', ErrorCode.invalid_frame),
        ('{"type":"message","client_msg_id":"a","text":""}', ErrorCode.invalid_frame),
        ('{"type":"message","client_msg_id":"a","text":"\\t\\n "}', ErrorCode.invalid_frame),
        ('{"type":"message","client_msg_id":"a","text":"x\\u0000"}', ErrorCode.invalid_frame),
        ('{"type":"message","client_msg_id":"a\\u0000","text":"x"}', ErrorCode.invalid_frame),
        ('{"type":"hello","last_seq":"5"}', ErrorCode.invalid_frame),
        ('{"type":"hello","last_seq":true}', ErrorCode.invalid_frame),
        ('{"type":"hello","last_seq":-1}', ErrorCode.invalid_frame),
        ('{"type":"hello","last_seq":1.5}', ErrorCode.invalid_frame),
        ('{"type":"hello","last_seq":99999999999999999999}', ErrorCode.invalid_frame),
        ('{"type":"hello","resume_token":""}', ErrorCode.invalid_frame),
        ('{"type":"hello","locale":"en US; DROP"}', ErrorCode.invalid_frame),
        ('{"type":"hello","channel":"x y"}', ErrorCode.invalid_frame),
    ],
)
def test_refused_frames(raw: str, code: ErrorCode) -> None:
    assert code_of(raw) is code


def test_client_msg_id_length_limit() -> None:
    assert isinstance(
        parse(json.dumps({"type": "message", "client_msg_id": "x" * 64, "text": "a"})),
        frames.MessageFrame,
    )
    assert code_of(json.dumps({"type": "message", "client_msg_id": "x" * 65, "text": "a"})) is (
        ErrorCode.invalid_frame
    )


def test_text_limit_counts_utf8_bytes() -> None:
    at_limit = {"type": "message", "client_msg_id": "a", "text": "é" * (LIMIT // 2)}
    assert isinstance(parse(json.dumps(at_limit)), frames.MessageFrame)
    over = {"type": "message", "client_msg_id": "a", "text": "é" * (LIMIT // 2) + "x"}
    with pytest.raises(FrameError) as info:
        parse(json.dumps(over))
    assert info.value.code is ErrorCode.text_too_large
    assert info.value.client_msg_id == "a"


def test_errors_never_echo_the_text() -> None:
    with pytest.raises(FrameError) as info:
        parse('{"type":"message","client_msg_id":"a","text":["my secret"]}')
    assert "secret" not in info.value.detail
    assert info.value.client_msg_id == "a"


@pytest.mark.parametrize(
    ("text", "erase"),
    [("DELETE", True), ("  DELETE\n", True), ("delete", False), ("DELETE me", False), ("", False)],
)
def test_erase_command_is_exact(text: str, erase: bool) -> None:
    assert frames.is_erase_command(text) is erase


# -- fuzzing -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "message", "ping", "typing", "close", "x", ""])},
    optional={
        "client_msg_id": json_values,
        "text": json_values,
        "resume_token": json_values,
        "last_seq": json_values,
        "locale": json_values,
        "channel": json_values,
    },
)


def _parse_or_error(raw: str) -> frames.ClientFrame | FrameError:
    try:
        result: frames.ClientFrame | FrameError = parse(raw)
    except FrameError as exc:
        result = exc
    if isinstance(result, FrameError):
        assert result.code in set(ErrorCode)
        assert result.detail
    return result


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text_only_ever_raises_frame_error(raw: str) -> None:
    _parse_or_error(raw)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_decoded_leniently(raw: bytes) -> None:
    _parse_or_error(raw.decode("utf-8", errors="replace"))


@settings(max_examples=600, deadline=None)
@given(frame_like)
def test_fuzz_frame_shaped_json(data: dict[str, Any]) -> None:
    result = _parse_or_error(json.dumps(data))
    if isinstance(result, frames.MessageFrame):
        # Whatever got through is safe to store and within limits.
        assert 0 < len(result.text.encode("utf-8")) <= LIMIT
        assert result.text.strip()
        assert "\x00" not in result.text
        assert 1 <= len(result.client_msg_id) <= 64
    if isinstance(result, frames.HelloFrame) and result.last_seq is not None:
        assert 0 <= result.last_seq <= frames.MAX_SEQ


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=1, max_size=64).filter(lambda s: "\x00" not in s),
    st.text(min_size=1, max_size=1500).filter(lambda s: s.strip() and "\x00" not in s),
)
def test_fuzz_valid_messages_round_trip(client_msg_id: str, text: str) -> None:
    raw = json.dumps({"type": "message", "client_msg_id": client_msg_id, "text": text})
    result = _parse_or_error(raw)
    if len(text.encode("utf-8")) > LIMIT:
        assert isinstance(result, FrameError)
        assert result.code is ErrorCode.text_too_large
    else:
        assert isinstance(result, frames.MessageFrame)
        assert (result.client_msg_id, result.text) == (client_msg_id, text)
