"""Engine.IO v4 / Socket.IO v5 packets and WebSocket frames of the fast path (pure)."""

from __future__ import annotations

import json
import struct

import pytest

from tidings.realtime.transport import protocol as p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", p.Packet(p.CONNECT)),
        ('0{"token":"abc"}', p.Packet(p.CONNECT, data={"token": "abc"})),
        ("0/admin,", p.Packet(p.CONNECT, namespace="/admin")),
        ('0/admin,{"token":"x"}', p.Packet(p.CONNECT, namespace="/admin", data={"token": "x"})),
        ("0/admin", p.Packet(p.CONNECT, namespace="/admin")),
        ("1", p.Packet(p.DISCONNECT)),
        ('2["subscribe",{"feed":"a"}]', p.Packet(p.EVENT, data=["subscribe", {"feed": "a"}])),
        ('212["subscribe",{}]', p.Packet(p.EVENT, id=12, data=["subscribe", {}])),
        ('2/chat,7["x"]', p.Packet(p.EVENT, namespace="/chat", id=7, data=["x"])),
        ("35[]", p.Packet(p.ACK, id=5, data=[])),
        ('4{"message":"no"}', p.Packet(p.CONNECT_ERROR, data={"message": "no"})),
    ],
)
def test_decode(text: str, expected: p.Packet) -> None:
    assert p.decode(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "x", "9", "2[not json", "0{", "5[]", "5-[]", "50-[]", "599-[]"],
)  # fmt: skip
def test_decode_refuses_what_is_not_a_text_packet(text: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode(text)


MALFORMED = {
    "superscript type": "²",
    "superscript ack id": '2²["a"]',
    "arabic-indic ack id": '2\u0663["a"]',
    "fullwidth ack id": '2\uff11["a"]',
    "thousands of digits": "2" + "1" * 5000 + '["a"]',
    "sixteen digits": "2" + "1" * 16 + '["a"]',
    "deep array": "2" + "[" * 100_000,
    "deep closed array": "2" + "[" * 40 + "]" * 40,
    "deep object": "2" + '{"a":' * 50_000,
    "long namespace": "0/" + "n" * 1000,
    "superscript attachments": '5²-["a"]',
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_decode_raises_only_protocol_error_on_malformed_packets(text: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode(text)


def test_decode_keeps_brackets_inside_strings_out_of_the_depth() -> None:
    text = '2["a",' + json.dumps("[{" * 1000) + "]"
    assert p.decode(text).data == ["a", "[{" * 1000]
    assert p.decode("2" + "[" * 32 + "]" * 32).data is not None
    assert p.decode("2" + "1" * 15 + '["a"]').id == int("1" * 15)


def test_decode_head_does_not_parse_the_payload() -> None:
    head, pos = p.decode_head('2/chat,7["x", not even json')
    assert head == p.Packet(p.EVENT, namespace="/chat", id=7) and pos == 8


def test_binary_packets_announce_their_attachments() -> None:
    packet = p.decode('51-3["subscribe",{"_placeholder":true,"num":0}]')
    assert packet == p.Packet(p.BINARY_EVENT, id=3, attachments=1,
                              data=["subscribe", {"_placeholder": True, "num": 0}])  # fmt: skip
    assert p.without_placeholders(packet.data) == ["subscribe", b""]
    assert p.decode('62-/x,1[{"a":{"_placeholder":true,"num":1}}]').attachments == 2


def test_encode_matches_the_wire_format() -> None:
    assert p.encode(p.CONNECT, {"sid": "abc"}) == '40{"sid":"abc"}'
    assert p.encode(p.ACK, [{"ok": True}], ack_id=3) == '433[{"ok":true}]'
    assert p.encode(p.DISCONNECT) == "41"
    refusal = {"message": "Invalid namespace"}
    expected = '44/admin,{"message":"Invalid namespace"}'
    assert p.encode(p.CONNECT_ERROR, refusal, "/admin") == expected
    assert p.event("feed.update", {"feed": "user:a"}) == '42["feed.update",{"feed":"user:a"}]'


def test_encoded_event_round_trips_and_is_ascii() -> None:
    data = {"text": "héllo \ud800 ✓", "n": [1, 2.5, None, True]}
    packet = p.event("feed.update", data)
    assert packet.isascii()  # a lone surrogate cannot make the frame invalid UTF-8
    assert p.event_data(packet) == ("feed.update", data)
    assert p.decode(packet[1:]) == p.Packet(p.EVENT, data=["feed.update", data])


def test_open_packet() -> None:
    packet = p.open_packet("sid1", 25.0, 20.0, 1_000_000)
    assert packet[0] == "0"
    assert json.loads(packet[1:]) == {
        "sid": "sid1", "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000,
        "maxPayload": 1_000_000,
    }  # fmt: skip


def parse_frame(frame: bytes) -> tuple[int, bytes]:
    """(first byte, payload) of an unmasked frame, by RFC 6455 section 5.2."""
    assert not frame[1] & 0x80, "server frames are not masked"
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        (length,), offset = struct.unpack("!H", frame[2:4]), 4
    elif length == 127:
        (length,), offset = struct.unpack("!Q", frame[2:10]), 10
    payload = frame[offset:]
    assert len(payload) == length
    return frame[0], payload


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_lengths(size: int) -> None:
    payload = "a" * size
    first, body = parse_frame(p.text_frame(payload))
    assert first == 0x81  # FIN, text
    assert body == payload.encode()
    assert p.text_frame(payload.encode()) == p.text_frame(payload)


def test_close_frame() -> None:
    first, body = parse_frame(p.close_frame(1001))
    assert first == 0x88 and struct.unpack("!H", body) == (1001,)


def test_feed_frames_name_each_feed_and_equal_a_whole_encode() -> None:
    data = {"feed": "user:alice", "new": [{"id": "a", "text": "é"}], "deleted": []}
    frames = p.FeedFrames.of("feed.update", data)
    for feed in ("timeline:bob", "user:alice", 'odd"feed'):
        whole = p.event("feed.update", {**data, "feed": feed})
        assert frames.packet(feed).decode() == whole
        assert frames.frame(feed) == p.text_frame(whole)
    assert frames.frame("timeline:bob") is frames.frame("timeline:bob")  # made once
    empty = p.FeedFrames.of("feed.update", {"feed": "x"})
    assert empty.packet("y").decode() == p.event("feed.update", {"feed": "y"})


def test_polling_packets_split_a_clients_payload() -> None:
    body = b'40{"token":"t"}\x1e3\x1ebAQID\x1e1'
    assert p.polling_packets(body) == ['40{"token":"t"}', "3", "bAQID", "1"]
    assert p.polling_packets(b"") == []


@pytest.mark.parametrize(
    "body",
    [
        b"\xff4",  # not UTF-8
        b"x",  # untyped
        b"4\x1e",  # an empty packet
        b"0",  # open, noop and ping are not a client's to send over long-polling
        b"6",
        b"2",
        b"7",  # names no packet type
        "٣".encode(),  # a digit, not an ASCII one
        b"b!!",  # not base64
        b"bAQI",  # base64 without its padding
        "\x1e".join(["3"] * 17).encode(),  # more packets than python-engineio takes
    ],
)
def test_polling_packets_refuse_what_a_client_does_not_send(body: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.polling_packets(body)


def test_websocket_packets_may_also_be_the_upgrade_probe() -> None:
    p.check_packet("2probe", p.WEBSOCKET_TYPES)
    p.check_packet("5", p.WEBSOCKET_TYPES)
    for packet in ("", "9", "bé", "x"):
        with pytest.raises(p.ProtocolError):
            p.check_packet(packet, p.WEBSOCKET_TYPES)
