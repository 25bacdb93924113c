"""The invoice planner's part of the lifecycle rules: deals that changed after their invoice, and deals
whose ledger customer is archived, merged or deleted.

Pure, like ``app.sync.invoice_plan`` that calls it: the facts in (a deal, its invoice link and invoice as
mirrored, the credits on it, the workspace's rule), plan entries out. What to do is decided by
``app.sync.lifecycle`` (``deal_facts`` / ``deal_actions``); this module turns its actions into writes
the apply step carries out through the journal (void, credit note, update, a new invoice), flags that
close by themselves when their cause is gone, and holds whose reason carries the one-click way out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.domain.models import Deal
from app.store.repos import LinkRecord
from app.sync.deal_checks import provider_name
from app.sync.lifecycle import deal_actions, deal_facts, rule_from

# A flag's field on the Review page, by the cause's code (the older "won"/"lines" names are kept).
FLAG_FIELD = {"deal_lost": "won", "deal_reopened": "won", "deal_lines": "lines"}


@dataclass(frozen=True, slots=True)
class CustomerState:
    """A ledger customer that is not active, as the mirror knows it: ``archived``, ``merged`` (into
    ``survivor_id``) or ``deleted``."""

    state: str
    name: str
    survivor_id: str | None = None
    survivor_name: str | None = None


@dataclass(frozen=True)
class VoidInvoice:
    deal: Deal
    link: LinkRecord
    key: str
    reason: str


@dataclass(frozen=True)
class CreditInvoice:
    deal: Deal
    link: LinkRecord
    amount: Decimal  # net, in the invoice's currency
    key: str
    reason: str
    currency: str
    customer_id: str


@dataclass(frozen=True)
class CloseFlags:
    """The deal's open invoice flags, whose cause is gone."""

    deal: Deal
    link: LinkRecord


@dataclass
class AfterInvoice:
    """What the rules say for one invoiced deal; ``reinvoice``: the key of its new invoice."""

    flags: list[tuple[str, str, str]] = field(default_factory=list)  # (what, message, code)
    update: bool = False
    voids: list[VoidInvoice] = field(default_factory=list)
    credits: list[CreditInvoice] = field(default_factory=list)
    close: bool = False
    reinvoice: str | None = None
    marks: dict[str, Any] = field(default_factory=dict)  # kept on the invoice link's snapshot


def after_invoice(deal: Deal, link: LinkRecord, invoice: dict[str, Any], *, ledger: str, rule_options: Any,
                  credited: Decimal, lost: bool, digest: str, key: Any) -> AfterInvoice:
    """The rules' answer for a deal with an invoice. ``digest``: the deal's lines now (its link keeps the
    invoiced ones); ``key(op, *parts)``: the plan's idempotency keys."""
    out = AfterInvoice()
    if not invoice:  # not mirrored yet: nothing to compare with
        return out
    snap = link.snapshot or {}
    won_now = deal.won and not deal.archived
    row = invoice
    if (ledger == "quickbooks" and invoice.get("status") in ("awaiting_payment", "overdue")
            and invoice.get("balance") == invoice.get("total")):
        row = {**invoice, "status": "draft"}  # QuickBooks has no drafts: unpaid and untouched counts as one
    left_won = bool(snap.get("left_won")) or not won_now
    lines_changed = bool(deal.line_items) and digest != snap.get("deal")
    facts = deal_facts(deal, row, link.acct_id, lines_changed=lines_changed, ledger=ledger,
                       drafts_follow=rule_options.edited_deal == "update_draft", credited=credited, lost=lost,
                       left_won=left_won)
    if not won_now and not snap.get("left_won"):
        out.marks["left_won"] = True
    elif won_now and snap.get("left_won") and invoice.get("status") != "void":
        # won again while its invoice still stands: that episode is over, so a void the bookkeeper makes later
        # is theirs to explain (the report lists it), not a reason to invoice the deal again
        out.marks["left_won"] = False
    for a in deal_actions(facts, rule_from(rule_options)).actions:
        if a.kind == "close_flags":
            out.close = bool(snap.get("flagged"))
        elif a.kind == "flag":
            what = FLAG_FIELD.get(a.code, "lines")  # a mark of before the rules named causes: the same flag
            if snap.get("flagged") not in (f"{a.code}:{digest}:{deal.won}", f"{what}:{digest}:{deal.won}"):
                out.flags.append((what, a.reason, a.code))
        elif a.kind == "update_invoice":
            out.update = True
        elif a.kind == "void_invoice":
            out.voids.append(VoidInvoice(deal, link, key("void_invoice", deal.id, link.acct_id), a.reason))
        elif a.kind == "credit_note" and a.amount:
            after = facts.invoice_total - credited - a.amount  # credited before and after: the key's facts
            out.credits.append(CreditInvoice(deal, link, a.amount, key("credit_note", deal.id, link.acct_id,
                                                                       f"{credited:.2f}>{after:.2f}"), a.reason,
                                             invoice.get("currency") or deal.currency,
                                             invoice.get("customer_id") or ""))
        elif a.kind == "reinvoice":
            out.reinvoice = key("create_invoice", deal.id, f"after-{link.acct_id}")
            out.marks["left_won"] = False
    return out


def customer_hold(state: CustomerState, acct_id: str, ref: tuple[str, str], ledger: str) -> tuple[str, dict[str, Any]]:
    """Why a deal waits for its archived, merged or deleted customer, and the way out: (message, way_out)."""
    where = provider_name(ledger)
    crm_type = "contact" if ref[0] == "person" else "company"
    name = state.name or acct_id
    if state.state == "merged" and state.survivor_id:
        survivor = state.survivor_name or state.survivor_id
        return (f"{name} was merged into {survivor} in {where}, so this deal's invoice is waiting. Link the CRM "
                f"{crm_type} to {survivor}, from here, and the next sync makes the invoice.",
                {"kind": "link_to_survivor", "label": f"Link to {survivor} in {where}", "target_id": state.survivor_id,
                 "side": "accounting", "crm_type": crm_type, "crm_id": ref[1]})
    if state.state in ("deleted", "missing"):
        return (f"{name} was deleted in {where}, so this deal's invoice is waiting. Unlink it, from here, and the "
                "next sync creates the customer again and makes the invoice.",
                {"kind": "unlink", "label": f"Unlink {name}", "target_id": None, "side": "accounting",
                 "crm_type": crm_type, "crm_id": ref[1]})
    return (f"{name} is archived in {where}, so this deal's invoice is waiting. Reactivate it there, or from here, "
            "and the next sync makes the invoice.",
            {"kind": "reactivate", "label": f"Reactivate {name} in {where}", "target_id": acct_id,
             "side": "accounting", "crm_type": crm_type, "crm_id": ref[1]})


def customer_states(rows: Mapping[str, dict[str, Any]]) -> dict[str, CustomerState]:
    """Archived customer mirror rows (their data) -> their states, as the sync's fates step left them."""
    out: dict[str, CustomerState] = {}
    for rid, data in rows.items():
        state = data.get("fate") or "archived"
        if state == "active":
            continue
        name = data.get("fate_name") or data.get("raw_name") or data.get("name") or rid
        out[rid] = CustomerState(state, name, data.get("merged_into"),
                                 data.get("survivor_name"))
    return out


def deal_lost(deal: Deal) -> bool:
    """The CRM marks the deal lost (not merely back in the pipeline): HubSpot's closed-lost stage, Salesforce's
    closed and not won, Pipedrive's ``lost`` status, a Zoho CRM stage named lost."""
    if deal.won:
        return False
    p = deal.properties or {}
    if str(p.get("hs_is_closed_lost")).lower() == "true" or p.get("dealstage") == "closedlost":
        return True
    if str(p.get("IsClosed")).lower() == "true" and str(p.get("IsWon")).lower() != "true":
        return True
    if p.get("status") == "lost":
        return True
    return any("lost" in str(p.get(k) or "").casefold() for k in ("StageName", "Stage", "Stage.name"))
