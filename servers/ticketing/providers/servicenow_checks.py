"""What a ServiceNow write's answer proves (the Table API answers 200 whatever it stored).

`check_applied`: fields skipped by write ACLs or business rules are `forbidden`, text cut to its column is
`invalid_argument` (outside review domains18 #5, re-check 19 #2). `check_raced`: the Table API has no
conditional write, so an update made with `expected_version` proves from `sys_mod_count` in its answer
that no other write landed in between (outside review domains27 #3).
"""

from __future__ import annotations

from typing import Any

from servers.kit.errors import DomainError

TOOL_FIELD = {"state": "status", "close_code": "status", "close_notes": "status", "impact": "priority", "urgency": "priority",
              "short_description": "title", "description": "description", "assigned_to": "assignee", "category": "type",
              "assignment_group": "project", "parent_incident": "link", "comments": "comment", "work_notes": "comment"}


def stored_text(value: Any) -> str:
    return str("" if value is None else value).replace("\r\n", "\n").strip()


def check_applied(ticket_id: str, sent: dict[str, Any], row: dict[str, Any], before: dict[str, Any] | None) -> None:
    """Raise when ServiceNow's answer to a write does not hold what was written.

    The Table API skips fields the user has no write ACL on (and business rules may undo a value) and
    still answers 200 with the record as stored (outside review domains18 #5: a transition to On Hold and
    a priority change answered success with nothing moved). So each field sent is compared with the one
    that came back; a field the answer leaves out cannot be checked and is not reported."""
    differ = [f for f, value in sent.items() if f in row and stored_text(row[f]) != stored_text(value)]
    cut = [f for f in differ if _cut_short(row[f], sent[f])]
    missed = [f for f in differ if f not in cut]
    if missed:
        applied = sorted({TOOL_FIELD.get(f, f) for f in sent if f not in missed} - {TOOL_FIELD.get(f, f) for f in missed})
        raise skipped_error(ticket_id, missed, applied, row, created=before is None)
    if cut:
        raise _cut_error(ticket_id, cut, row, created=before is None)


def _cut_short(stored: Any, sent: Any) -> bool:
    """Whether ServiceNow stored `sent` cut to its column's length (short_description holds 160 characters
    out of the box, description 4,000): stored, but shorter — no missing permission (re-check 19 #2)."""
    kept, given = stored_text(stored), stored_text(sent)
    return bool(kept) and len(kept) < len(given) and given.startswith(kept)


def _cut_error(ticket_id: str, cut: list[str], row: dict[str, Any], created: bool) -> DomainError:
    """The write landed with text cut to its column's length: say what was kept, and not to write it again."""
    fields = ", ".join(f"{TOOL_FIELD.get(f, f)} to {len(str(row[f]))} characters (incident.{f})" for f in cut)
    what = f"{ticket_id} was created" if created else f"{ticket_id} was updated"
    return DomainError(
        "invalid_argument",
        f"{what}, but ServiceNow cut {fields}: the column holds no more. Everything else is stored; do not write it "
        "again — shorten the text with update_ticket (or put the rest in a comment) if the cut matters.",
        details={"cut": [TOOL_FIELD.get(f, f) for f in cut], "native_fields": cut, "ticket": ticket_id,
                 "current_version": str(row.get("sys_mod_count", "")), "partially_applied": True},
    )


def skipped_error(ticket_id: str, missed: list[str], applied: list[str], row: dict[str, Any], created: bool = False) -> DomainError:
    """`forbidden` naming what ServiceNow did not store, what it did, and what to do (retrying will not help)."""
    fields = sorted({TOOL_FIELD.get(f, f) for f in missed})
    native = ", ".join(f"incident.{f}" for f in missed)
    done = f"; it did apply {', '.join(applied)}" if applied else ""
    what = (f"{ticket_id} was created, but ServiceNow did not store {', '.join(fields)} ({native}){done}. Do not create it "
            "again: set the rest with update_ticket, or in ServiceNow" if created else
            f"ServiceNow answered success on {ticket_id} but did not store {', '.join(fields)} ({native}){done}")
    return DomainError(
        "forbidden",
        f"{what}. The integration user most likely may not write those fields (field write ACLs, or a business rule "
        f"resets them); retrying will not help: ask a ServiceNow admin for write access to {native}, or make the "
        "change in ServiceNow.",
        details={"not_applied": fields, "native_fields": missed, "applied": applied,
                 "current_version": str(row.get("sys_mod_count", "")), "ticket": ticket_id,
                 "partially_applied": True},  # the write landed: this answer says what is left (servers.kit.landed)
    )


def check_raced(ticket_id: str, expected_version: str, row: dict[str, Any]) -> None:
    """`conflict` when the write's answer shows another write landed since `expected_version` was read.

    The Table API has no conditional write (no If-Match, no version field it checks), so `expected_version`
    is compared on the read before the write and then proven from the write's answer: each stored update adds
    one to `sys_mod_count`, so an answer beyond `expected_version` + 1 means another update landed in between
    (outside review domains27 #3: two updates with one version both answered success). That write cannot be
    undone safely, so the later writer is told both landed; the earlier one, whose answer came first, saw no
    other write. A business rule that updates the incident again in the same transaction also counts as one."""
    try:
        expected, current = int(expected_version), int(str(row.get("sys_mod_count", "")))
    except ValueError:
        return  # not ServiceNow's counter: the read-side check already compared it
    if current > expected + 1:
        raise DomainError(
            "conflict",
            f"{ticket_id} was changed by someone else while your change was being written (version {expected} became "
            f"{current}, not {expected + 1}): ServiceNow has no conditional write, so both changes were stored, yours last. "
            "Get the ticket again (get_ticket), check that the other change still holds what it should, and redo it "
            "with the new version if yours replaced it",
            details={"current_version": str(current), "expected_version": expected_version, "written": True,
                 "partially_applied": True})  # the write landed: this answer says what is left (servers.kit.landed)
