"""The one-time historical migration: a saved plan first, then exactly that plan, resumably.

A dry run (the default) reads everything on both sides, deduplicates each side and matches the
two with the fuzzy matcher (a score and an explanation for every candidate pair), validates what
would be written and saves the plan: link N, create M in the ledger, create M' in the CRM, skip K
invalid, review J, each row with what the record holds now and what it will hold.

Applying runs the saved rows and nothing else. Every write goes through the sync engine's journal
(recorded before it is sent, with a deterministic idempotency key), so a run killed halfway is
resumed by the next apply without making anything twice; a second apply finds nothing to do.

The package, along its seams: ``estimate`` (what a plan holds, how long applying it takes), ``plan``
(the pure planner), ``apply`` (the run: dry run and apply), ``writes`` (the apply's journalled
writes) and ``words`` (plan and outcome in a bookkeeper's words).
"""

from __future__ import annotations

from app.ops.migration.apply import migrate, run_migration
from app.ops.migration.estimate import (
    ACTIONS,
    Estimate,
    MigrationResult,
    RowView,
    batch_limits,
    describe_duration,
    estimate,
    estimate_calls,
    saved_estimate,
)
from app.ops.migration.plan import (
    PlanInput,
    RowSpec,
    build_plan,
    crm_properties,
    disambiguate,
    link_row,
    written_fields,
)
from app.ops.migration.words import FIELD_WORDS, deals_sentence, describe_result, provider_words

__all__ = [
    "ACTIONS",
    "FIELD_WORDS",
    "Estimate",
    "MigrationResult",
    "PlanInput",
    "RowSpec",
    "RowView",
    "batch_limits",
    "build_plan",
    "crm_properties",
    "deals_sentence",
    "describe_duration",
    "describe_result",
    "disambiguate",
    "estimate",
    "estimate_calls",
    "link_row",
    "migrate",
    "provider_words",
    "run_migration",
    "saved_estimate",
    "written_fields",
]
