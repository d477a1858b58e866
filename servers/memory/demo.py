"""Sample data for `mcp-hub server memory --demo`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from servers.memory.model import Scope

if TYPE_CHECKING:
    from servers.memory.service import MemoryService

HANDBOOK = """# Employee handbook

## Time off
Full-time employees accrue 25 days of paid vacation a year. Requests go through the HR system at least
two weeks ahead; the manager approves them.

## Expenses
Submit receipts within 30 days. Travel is booked through the company travel desk; economy class for
flights under six hours.

## Security
Laptops use full-disk encryption. Report a lost device to the IT service desk within one hour.
"""


async def seed(service: MemoryService) -> None:
    await service.documents.ingest("Employee handbook", HANDBOOK, "demo://handbook", ["policy"], None)
    team = Scope(user="ada", project="apollo")
    await service.memories.remember("Ada prefers meetings after 10:00 Berlin time", "preference", team, ["calendar"], "demo", {})
    await service.memories.remember("Project Apollo ships on 2027-03-01", "fact", team, ["deadline"], "demo", {})
    await service.graph.create_entities([{"name": "Ada", "entityType": "person", "observations": ["leads Apollo"]},
                                         {"name": "Apollo", "entityType": "project", "observations": ["ships in March 2027"]}])
    await service.graph.create_relations([{"from": "Ada", "to": "Apollo", "relationType": "leads"}])
