"""The knowledge-graph tools' argument and result models (`servers.memory.server`), in the reference
server-memory's shapes and field names: entities, relations (`from` on the wire), observation additions and
deletions, and the graph a read answers. Arguments are closed (a misspelled key is refused) and bounded:
names and types without control characters."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from servers.memory.model import EntityName, ObservationText, TypeName

Observations = Annotated[list[ObservationText], Field(max_length=1000)]


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: EntityName = Field(description="The name of the entity")
    entityType: TypeName = Field(description="The type of the entity")
    observations: Observations = Field(description="An array of observation contents associated with the entity")


class Relation(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: EntityName = Field(alias="from", description="The name of the entity where the relation starts")
    to: EntityName = Field(description="The name of the entity where the relation ends")
    relationType: TypeName = Field(description="The type of the relation")


class ObservationAddition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entityName: EntityName = Field(description="The name of the entity to add the observations to")
    contents: Observations = Field(description="An array of observation contents to add")


class ObservationDeletion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entityName: EntityName = Field(description="The name of the entity containing the observations")
    observations: Observations = Field(description="An array of observations to delete")


EntityNames = Annotated[list[EntityName], Field(max_length=1000)]


class Entities(BaseModel):
    entities: list[Entity]


class Relations(BaseModel):
    relations: list[Relation]


class AddedObservations(BaseModel):
    entityName: str
    addedObservations: list[str]


class ObservationResults(BaseModel):
    results: list[AddedObservations]


class Done(BaseModel):
    success: bool = True
    message: str


class Graph(BaseModel):
    entities: list[Entity]
    relations: list[Relation]


def relation_rows(items: list[Relation]) -> list[dict[str, str]]:
    """`items` as the graph store takes them (`from`, `to`, `relationType`)."""
    return [{"from": r.from_, "to": r.to, "relationType": r.relationType} for r in items]
