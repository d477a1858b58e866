"""`hub.relay.fair_cap.FairCap`: a bound takes from the owner holding the most, never from one that
holds less (outside review, isolation round 10)."""

from __future__ import annotations

from hub.relay.fair_cap import FairCap


def test_a_flood_pushes_out_only_its_own_owners_entries() -> None:
    evicted: list[str] = []
    cap: FairCap[str, str] = FairCap(per_owner=3, total=5, on_evict=evicted.append)
    cap.put("a1", "alice", "a1")
    for n in range(10):
        cap.put(f"b{n}", "bob", f"b{n}")
    assert cap.get("a1") == "a1"
    assert [key for key, _ in cap.items()] == ["a1", "b7", "b8", "b9"]
    assert evicted == [f"b{n}" for n in range(7)]


def test_the_total_bound_takes_the_oldest_of_the_owner_holding_the_most() -> None:
    cap: FairCap[str, int] = FairCap(per_owner=10, total=4)
    for key, owner in [("a1", "a"), ("b1", "b"), ("b2", "b"), ("c1", "c"), ("b3", "b")]:
        cap.put(key, owner, 0)
    assert "b1" not in cap and len(cap) == 4  # b held the most: its oldest went, not a1 (the oldest of all)
    assert {"a1", "b2", "b3", "c1"} == {key for key, _ in cap.items()}


def test_put_again_makes_an_entry_its_owners_newest_and_pop_forgets_it() -> None:
    cap: FairCap[str, int] = FairCap(per_owner=2, total=10)
    cap.put("x", "o", 1)
    cap.put("y", "o", 2)
    cap.put("x", "o", 3)
    cap.put("z", "o", 4)  # y is the oldest now
    assert cap.get("y") is None and cap.get("x") == 3 and cap.pop("z") == 4 and cap.pop("z") is None
    assert len(cap) == 1
