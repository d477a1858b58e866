"""Normalized ticketing records, the same whichever backend answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["open", "in_progress", "on_hold", "resolved", "closed"]
STATUSES: tuple[Status, ...] = ("open", "in_progress", "on_hold", "resolved", "closed")
Priority = Literal["critical", "high", "medium", "low"]
Include = Literal["comments", "transitions", "links", "raw"]


class User(BaseModel):
    id: str
    name: str
    email: str | None = None


class Comment(BaseModel):
    id: str
    author: str | None = None
    body: str = Field(description="Markdown.")
    public: bool = Field(default=True, description="False for internal notes (work notes).")
    created_at: datetime


class Transition(BaseModel):
    id: str
    name: str
    to_status: Status
    native_to: str


class Link(BaseModel):
    type: str = Field(description='For example "blocks", "relates to", "duplicates".')
    direction: Literal["outward", "inward"]
    ticket: str


class Ticket(BaseModel):
    id: str = Field(description="Stable id to use with the other tools (the key where the provider has one).")
    provider: str
    remote_id: str
    key: str
    project: str
    title: str
    description: str = Field(default="", description="Markdown.")
    status: Status
    native_status: str
    priority: Priority | None = None
    type: str = "task"
    labels: list[str] = Field(default_factory=list)
    assignee: User | None = None
    reporter: User | None = None
    created_at: datetime
    updated_at: datetime
    url: str | None = None
    version: str = Field(description="Pass as expected_version to update_ticket or transition_ticket to avoid "
                                     "overwriting a newer change.")
    comments: list[Comment] | None = None
    transitions: list[Transition] | None = None
    links: list[Link] | None = None
    raw: dict[str, Any] | None = Field(default=None, description="The provider's payload (include=['raw']).")
    changed: list[str] | None = Field(default=None, description=(
        "update_ticket: the fields this update changed; [] when every value given was already stored, so nothing "
        "was written (version and updated_at kept)."))


class TicketPage(BaseModel):
    tickets: list[Ticket]
    next_cursor: str | None = None
    total: int | None = None
    truncated: bool = Field(default=False, description="The provider caps this search, or the walk passed over results it "
                            "cannot reach (GitHub: over 100 issues created in one second, or its search timed out and answered "
                            "with what it had found); narrow it to see them all.")


class CommentPage(BaseModel):
    comments: list[Comment]
    next_cursor: str | None = None


class Metadata(BaseModel):
    statuses: list[Status] = Field(default_factory=lambda: list(STATUSES))
    native_statuses: dict[str, Status] = Field(default_factory=dict)
    transitions: list[Transition] | None = None
    types: list[str]
    priorities: list[Priority]
    required_fields: list[str]
    projects: list[str] | None = Field(default=None, description="Project keys create_ticket accepts, where the backend lists them.")


class Project(BaseModel):
    key: str = Field(description="The project key, upper case; ticket keys are KEY-<number>.")
    created: bool = Field(description="False when the project already existed (keys are case-insensitive).")


class UserList(BaseModel):
    users: list[User]


class Deleted(BaseModel):
    id: str
    deleted: bool = True


class SearchQuery(BaseModel):
    text: str | None = None
    status: list[Status] | None = None
    assignee: str | None = None
    project: str | None = None
    labels: list[str] | None = None
    priority: list[Priority] | None = None
    type: str | None = None
    updated_since: datetime | None = None
    native_query: str | None = None


class NewTicket(BaseModel):
    project: str
    title: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=32_000)
    type: str = "task"
    priority: Priority | None = None
    labels: list[str] = Field(default_factory=list)
    assignee: str | None = None


class TicketPatch(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=32_000)
    priority: Priority | None = None
    labels: list[str] | None = None
    assignee: str | None = None
    type: str | None = None
