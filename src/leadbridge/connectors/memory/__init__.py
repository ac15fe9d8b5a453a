"""An in-memory example CRM behind the connector contract, for tests and demonstrations.

`MemoryCRM` offers accounts (match keys: domain, name), contacts (email), leads (email),
opportunities (name), tasks (leads, contacts and opportunities with the marketing fields of
`leadbridge.connectors.marketing`), and Website Visitor and Website Hit records as native
objects (`website_visitors`, `website_hits`, like a CRM with custom entities), stamps every
change with a clock the caller controls, and can be told to fail in every way the contract
knows: outages (`fail_next`), refused records (`refuse`), converted leads (`convert_lead`),
deleted records (`remove`) and crashes mid-batch (`crash_after`).
It is the reference for what a connector answers, and the engine's tests run against it.
"""

from __future__ import annotations

from leadbridge.connectors.memory.clock import MemoryClock
from leadbridge.connectors.memory.crm import MemoryCRM, SimulatedCrash
from leadbridge.connectors.memory.objects import default_objects

__all__ = ["MemoryCRM", "MemoryClock", "SimulatedCrash", "default_objects"]
