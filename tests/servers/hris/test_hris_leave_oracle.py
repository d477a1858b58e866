"""HRIS: no answer to a caller who may not see leave reasons depends on a type's booked hours
(re-check 8: `request_time_off` refused "not enough sick left" only when sick leave was booked, while
its dry run answered ok), the balance is still enforced (on approval), and a dry run answers what
the real call would, for every caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.auth.principal import Principal
from tests.servers.hris.test_hris_writes import ADMIN, HR, WRITER, _book_sick_leave, call, hris

pytestmark = pytest.mark.anyio

SICK_ENTITLEMENT = {"type": "sick", "start": "2027-03-01", "end": "2027-03-12"}  # 80 h: the whole sick entitlement


def outcome(answer: dict[str, Any]) -> dict[str, Any]:
    """What an answer tells, without what differs between two employees or a dry and a real call."""
    if "code" in answer:
        return {"code": answer["code"], "message": answer["message"], "details": answer.get("details")}
    made = answer.get("request") or {}
    return {**{k: v for k, v in answer.items() if k not in ("request", "dry_run")}, "status": made.get("status", "requested")}


@pytest.mark.parametrize("allow", ["leave_reason", ""])
@pytest.mark.parametrize("caller", [WRITER, ADMIN], ids=["write", "admin"])
async def test_a_request_tells_nothing_of_the_hidden_leave_booked(tmp_path: Path, caller: Principal, allow: str) -> None:
    """Alan (e3) has 16 h of sick leave booked, Ada (e2) none: the caller's answers for both, dry run
    and real, are alike — the request is booked as pending whatever the balance."""
    async with hris(tmp_path, allow) as hub:
        await _book_sick_leave(hub)
        answers = {(employee, dry): await call(hub, "request_time_off", caller, employee_id=employee, dry_run=dry,
                                                **SICK_ENTITLEMENT)
                   for employee in ("e3", "e2") for dry in (True, False)}
        seen = {str(outcome(a)) for a in answers.values()}
        assert len(seen) == 1, answers
        assert answers[("e3", False)]["request"]["status"] == "requested" and answers[("e3", False)]["reason_hidden"]


@pytest.mark.parametrize("allow", ["leave_reason", ""])
async def test_approving_over_the_balance_is_refused(tmp_path: Path, allow: str) -> None:
    """The balance check moves to the approval: with the figures for who may see them, without the
    figures or the type for anyone else; the request can still be denied, and nothing is overdrawn."""
    async with hris(tmp_path, allow) as hub:
        await _book_sick_leave(hub)
        made = await call(hub, "request_time_off", WRITER, employee_id="e3", **SICK_ENTITLEMENT)
        request_id = made["request"]["id"]
        hidden = await call(hub, "decide_time_off", ADMIN, request_id=request_id, decision="approve", confirm=True)
        assert hidden["code"] == "conflict" and "sick" not in hidden["message"] and "64" not in hidden["message"]
        assert hidden["details"] == {"request_id": request_id, "requested_hours": 80.0, "reason_hidden": True}
        shown = await call(hub, "decide_time_off", HR, request_id=request_id, decision="approve", confirm=True)
        assert shown["code"] == "conflict"
        if allow:
            assert "64h left" in shown["message"] and shown["details"] == {
                "request_id": request_id, "type": "sick", "requested_hours": 80.0, "left_hours": 64.0,
                "entitlement_hours": 80.0, "booked_hours": 16.0}
        else:
            assert shown["details"] == hidden["details"]
        denied = await call(hub, "decide_time_off", ADMIN, request_id=request_id, decision="deny", confirm=True)
        assert denied["status"] == "denied"
        balances = await call(hub, "get_time_off_balances", employee_id="e3")
        sick = balances["total"] or next(b for b in balances["balances"] if b["type"] == "sick")  # all types if hidden
        assert sick["booked_hours"] == 16.0 and sick["pending_hours"] == 0.0
        # within the balance, the caller's pending request is approved as before
        fits = await call(hub, "request_time_off", WRITER, employee_id="e3", type="sick", start="2027-03-01", end="2027-03-02")
        approved = await call(hub, "decide_time_off", ADMIN, request_id=fits["request"]["id"], decision="approve", confirm=True)
        assert approved["status"] == "approved"


@pytest.mark.parametrize("caller", [HR, WRITER, None], ids=["hris:sensitive", "write", "local-operator"])
async def test_a_dry_run_answers_what_the_real_call_would(tmp_path: Path, caller: Principal | None) -> None:
    """Over the balance (refused only for who may see it) and overlapping a booked day (refused for all)."""
    async with hris(tmp_path, "leave_reason") as hub:
        await _book_sick_leave(hub)  # 2027-01-11..12
        for args in (SICK_ENTITLEMENT, {"type": "vacation", "start": "2027-01-12", "end": "2027-01-12"}):
            dry = await call(hub, "request_time_off", caller, employee_id="e3", dry_run=True, **args)
            real = await call(hub, "request_time_off", caller, employee_id="e3", **args)
            assert outcome(dry) == outcome(real), (args, dry, real)
            if args is SICK_ENTITLEMENT:
                assert ("code" in real) == (caller is not WRITER), real
            else:
                assert real["code"] == "conflict" and "overlaps" in real["details"], real
