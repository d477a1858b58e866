"""BambooHR's Form Post encoding of its webhooks, read into the shape of its JSON one.

BambooHR posts either JSON (recommended) or "Form Post" — `application/x-www-form-urlencoded` with PHP-style
bracketed keys — for both of its data structures (documentation.bamboohr.com, "Event-Based Webhooks" and
"Field-Based Webhooks"):

- Event-Based: `type=employee.updated&data[companyId]=1&data[employeeId]=67890&data[changedFields][0]=firstName`
  → `{"type": …, "data": {"companyId": …, "employeeId": …, "changedFields": {"0": …}}}`;
- Field-Based: `employees[12345][changedFields][0]=First+name&employees[12345][First+name]=John`, keyed by the
  employee's id → `{"employees": [{"id": "12345", "action": …, …}]}` (its action, when the form carries none, is
  `Updated`: Created and Deleted carry empty `changedFields`/`fields`, which a form cannot show).

The signature is over the raw body, checked before this runs. Bounded: at most `MAX_FIELDS` fields, keys of at most
`MAX_DEPTH` brackets; anything else is `Malformed` (400), never a partial read.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from servers.kit.webhooks.readers import Malformed

MAX_FIELDS = 10_000
MAX_DEPTH = 4
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_PART = re.compile(r"\[([^\[\]]*)\]")
FORM_TYPE = "application/x-www-form-urlencoded"


def nested_form(body: bytes) -> dict[str, Any]:
    """The form's fields as nested objects (`a[b][c]=v` → `{"a": {"b": {"c": "v"}}}`); a repeated key keeps its last value."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"the form body cannot be read ({type(exc).__name__}): send UTF-8 form fields or JSON") from None
    out: dict[str, Any] = {}
    for key, value in pairs:
        found = _KEY.fullmatch(key)
        if found is None:
            raise Malformed("a form field's name is not `name` or `name[part]…`")
        path = [found.group(1), *_PART.findall(found.group(2))]
        if len(path) > MAX_DEPTH + 1:
            raise Malformed(f"a form field nests deeper than {MAX_DEPTH} brackets")
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise Malformed(f"form field {part!r} is both a value and a group")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise Malformed(f"form field {path[-1]!r} is both a value and a group")
        node[path[-1]] = value
    return out


def bamboohr_form(body: bytes) -> dict[str, Any]:
    """A BambooHR Form Post as the JSON body of the same webhook would be (module docstring)."""
    form = nested_form(body)
    employees = form.get("employees")
    if isinstance(employees, dict):
        form["employees"] = [{"action": "Updated", **(fields if isinstance(fields, dict) else {}), "id": employee_id}
                             for employee_id, fields in employees.items()]
    return form
