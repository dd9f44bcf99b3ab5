"""The ledger of a subscription (pure): what counts as new, as a repeat and as an update."""

from __future__ import annotations

from tidings_client.delivery import ZERO_ID, Ledger


def activity(n: int, **fields: object) -> dict[str, object]:
    return {"id": f"0190{n:04d}-0000-7000-8000-000000000000", "verb": "post", **fields}


def test_new_repeats_and_updates() -> None:
    ledger = Ledger(ZERO_ID, capacity=2)
    first, second = activity(1), activity(2)
    assert [a["id"] for a in ledger.sort([second, first, second])] == [first["id"], second["id"]]
    assert ledger.is_new(str(first["id"]))
    ledger.record(first)
    ledger.record(second)
    assert ledger.last == second["id"]
    assert not ledger.is_new(str(first["id"])) and ledger.unchanged(first)  # a repeat
    assert not ledger.unchanged(activity(1, score=3))  # an update
    ledger.record(activity(3))  # capacity 2: the oldest is forgotten, `last` still guards it
    assert not ledger.seen(str(first["id"])) and not ledger.is_new(str(first["id"]))


def test_a_resubscribe_starts_where_the_ledger_stood_32_deliveries_ago() -> None:
    ledger = Ledger(ZERO_ID)
    ledger.delivered(activity(5))
    assert ledger.since() == ZERO_ID  # one lost below 5 (out of id order) is still found
    assert ledger.is_new(str(activity(3)["id"]))  # ... and new when it comes
    for n in range(6, 6 + 32):
        ledger.delivered(activity(n))
    assert ledger.since() == activity(5)["id"]  # 32 deliveries on: it stood at 5 then
    assert not ledger.is_new(str(activity(3)["id"]))  # below: an update of an old one
    assert ledger.last == activity(37)["id"]
