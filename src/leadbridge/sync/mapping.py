"""The mapping manual: which hub objects pair with which CRM objects, and per field the
direction and the conflict rule. Configuration is data, read from `leadbridge.toml`:

    [[connections.mycrm.objects]]
    hub = "contact"
    crm = "contacts"
    match = ["email"]
    fields = [
      {hub = "email", crm = "email", rule = "most_recent"},
      {hub = "name", crm = "first_name", direction = "to_crm"},
    ]

Objects are synced in the order listed (an account before its contacts). Hub objects are
`website_visitor` (organisations shown as Website Visitors), `contact` and `website_hit`
(scored hits of paired visitors, push only). Match keys are tried in order: the first whose
value finds a record decides (domain, then name). `pull = false` makes an object push only.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class Direction(enum.StrEnum):
    BOTH = "both"
    TO_CRM = "to_crm"
    TO_HUB = "to_hub"


class Rule(enum.StrEnum):
    CRM_WINS = "crm_wins"
    HUB_WINS = "hub_wins"
    MOST_RECENT = "most_recent"
    PREFER_CRM_UNLESS_BLANK = "prefer_crm_unless_blank"
    DONT_SYNC = "dont_sync"


class FieldMapping(BaseModel):
    model_config = {"extra": "forbid"}
    hub: str = Field(min_length=1)
    crm: str = Field(min_length=1)
    direction: Direction = Direction.BOTH
    rule: Rule = Rule.MOST_RECENT
    blank_overwrites: bool = False  # may an empty value replace a filled one?

    @property
    def pushes(self) -> bool:
        return self.rule != Rule.DONT_SYNC and self.direction in (Direction.BOTH,
                                                                  Direction.TO_CRM)

    @property
    def pulls(self) -> bool:
        return self.rule != Rule.DONT_SYNC and self.direction in (Direction.BOTH,
                                                                  Direction.TO_HUB)


class ObjectMapping(BaseModel):
    model_config = {"extra": "forbid"}
    hub: Literal["contact", "website_visitor", "website_hit"]
    crm: str = Field(min_length=1)
    match: list[str] = Field(default_factory=list)  # hub fields, tried in this order
    fields: list[FieldMapping] = Field(min_length=1)
    create_in_crm: bool = True
    create_in_hub: bool = False
    pull: bool = True  # False: push only, the CRM's records of this object are never read
    constants: dict[str, str] = Field(default_factory=dict)  # CRM fields set on create

    @model_validator(mode="after")
    def _match_keys_are_mapped(self) -> ObjectMapping:
        mapped = {f.hub for f in self.fields}
        missing = [m for m in self.match if m not in mapped]
        if missing:
            raise ValueError(f"match keys {missing} are not among the mapped hub fields")
        crm = [f.crm for f in self.fields]
        if len(crm) != len(set(crm)):
            raise ValueError("a CRM field is mapped twice")
        return self

    def crm_field(self, hub_field: str) -> str:
        return next(f.crm for f in self.fields if f.hub == hub_field)

    def maps(self, hub_field: str) -> bool:
        return any(f.hub == hub_field and f.rule != Rule.DONT_SYNC for f in self.fields)


class MappingManual(BaseModel):
    model_config = {"extra": "forbid"}
    objects: list[ObjectMapping] = Field(min_length=1)
