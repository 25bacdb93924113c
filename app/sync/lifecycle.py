"""What to do when a linked record is archived, deleted or merged, or a deal changes after its invoice.

Pure: no store, connector or clock. The engine gathers the facts (a link's two ``RecordFate``s, a deal
and its invoice as the mirror holds them, the workspace's rule) and gets back ``Action``s: what to do
automatically, and ``flag``s with a reason in a bookkeeper's words and the one-click way out.

Links (``link_actions``):

* CRM record merged into X: the link follows X (``follow_crm``), unless X is already linked to another
  customer (then two customers stand for one company: flagged). An inferred merge (Pipedrive, Zoho CRM)
  is only proposed: flagged with "link to X" as the way out.
* CRM record deleted: the ledger customer is never deleted. With open invoices, flagged (way out:
  restore it in the CRM); without, the link simply stops syncing.
* Ledger customer archived: its next invoice is held (way out: reactivate it). Merged into Y: held
  (way out: link the CRM record to Y). Deleted (Zoho Books deletes unused contacts for good): held
  (way out: unlink, so the next sync creates the customer again).

Deals invoiced already (``deal_actions``), rule ``flag`` (default), ``void`` or ``credit``:

* Lost, or reopened (no longer won): ``flag`` flags; ``void`` voids an invoice with nothing paid;
  ``credit`` raises a credit note for what is still owed (a draft is voided instead; the ledger
  cannot credit a draft). Anything the rule cannot do is flagged with the reason.
* Won again with its invoice voided: invoiced again (``reinvoice``).
* Lines changed: a draft follows the deal (``update_invoice``) when the workspace lets drafts follow;
  otherwise ``void`` voids an unpaid invoice and invoices again, ``credit`` credits the difference when
  the deal shrank; a deal that grew, or a paid invoice, is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from app.domain.lifecycle import RecordFate
from app.domain.models import Deal, InvoiceStatus
from app.domain.money import money
from app.domain.settings import InvoiceOptions

DealRule = Literal["flag", "void", "credit"]
DEAL_RULES: tuple[DealRule, ...] = ("flag", "void", "credit")
LEDGERS_WITH_CREDIT_NOTES = frozenset({"quickbooks", "xero", "zohobooks"})

ActionKind = Literal["follow_crm", "follow_ledger", "hold_invoices", "unlink", "flag", "void_invoice",
                     "credit_note", "update_invoice", "reinvoice", "close_flags"]
WayOutKind = Literal["reactivate", "link_to_survivor", "restore_in_crm", "unlink", "void", "credit_note",
                     "merge_in_ledger", "review_invoice"]


@dataclass(frozen=True, slots=True)
class WayOut:
    """The one click that settles a flag: ``target_id`` is the record it acts on (the customer to
    reactivate, the survivor to link to, the invoice to void or credit)."""

    kind: WayOutKind
    label: str
    target_id: str | None = None
    side: Literal["crm", "accounting"] = "accounting"


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    reason: str
    way_out: WayOut | None = None
    target_id: str | None = None  # the survivor to follow, the invoice to void/credit/update
    amount: Decimal | None = None  # a credit note's amount (net, in the invoice's currency)
    code: str = ""  # a stable word for the cause ("crm_merged", "deal_lost"...): flags close by it


@dataclass(frozen=True, slots=True)
class LinkFacts:
    crm: RecordFate
    ledger: RecordFate
    crm_name: str
    ledger_name: str
    open_invoices: int = 0  # invoices of this customer not paid and not void
    survivor_linked_to: str | None = None  # the customer the CRM survivor is linked to already, if any
    survivor_linked_name: str | None = None


@dataclass(frozen=True, slots=True)
class DealFacts:
    deal_name: str
    won: bool
    lost: bool  # lost (or deleted); not won and not lost: reopened, back in the pipeline
    lines_changed: bool  # the deal's lines or amount differ from what was invoiced
    deal_total: Decimal  # net, in the invoice's currency
    invoice_id: str
    invoice_number: str | None
    invoice_status: InvoiceStatus | None
    invoice_total: Decimal  # net of tax, as invoiced
    amount_paid: Decimal = Decimal(0)
    credited: Decimal = Decimal(0)  # net credited already
    currency: str = ""
    ledger: str = ""  # quickbooks, xero, zohobooks
    drafts_follow: bool = True  # the workspace's "edited_deal": update_draft
    left_won: bool = True  # the deal was seen not won since it was invoiced (False: a void is the ledger's own)


@dataclass(frozen=True, slots=True)
class Outcome:
    actions: tuple[Action, ...] = field(default_factory=tuple)

    @property
    def flags(self) -> list[Action]:
        return [a for a in self.actions if a.kind == "flag"]

    @property
    def holds_invoices(self) -> bool:
        return any(a.kind == "hold_invoices" for a in self.actions)

    def kinds(self) -> list[str]:
        return [a.kind for a in self.actions]


def rule_from(options: InvoiceOptions) -> DealRule:
    """The workspace's rule for deals changed after invoicing (``invoices.after_invoice``); ``flag`` by default."""
    return next((rule for rule in DEAL_RULES if rule == options.after_invoice), "flag")


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def deal_facts(deal: Deal, invoice: dict[str, Any], invoice_id: str, *, lines_changed: bool, ledger: str,
               drafts_follow: bool = True, credited: Decimal = Decimal(0), lost: bool = False,
               left_won: bool = True) -> DealFacts:
    """The facts ``deal_actions`` needs, from a deal and its invoice as the mirror holds it (``status``,
    ``number``, ``amount_paid``, and ``sub_total`` when kept, else ``total``). ``lines_changed``: the deal's
    digest differs from the one stored on its invoice link. ``lost``: the CRM marks it lost (a deal not won
    and not lost is reopened); a deleted (archived) deal counts as lost."""
    status = invoice.get("status")
    statuses: tuple[InvoiceStatus, ...] = ("draft", "awaiting_payment", "partly_paid", "paid", "overdue", "void")
    return DealFacts(
        deal_name=deal.name, won=deal.won and not deal.archived, lost=lost or deal.archived,
        lines_changed=lines_changed, deal_total=deal.net, invoice_id=invoice_id,
        invoice_number=invoice.get("number"), invoice_status=next((x for x in statuses if x == status), None),
        invoice_total=_dec(invoice.get("sub_total") or invoice.get("total")),
        amount_paid=_dec(invoice.get("amount_paid")), credited=credited, currency=deal.currency, ledger=ledger,
        drafts_follow=drafts_follow, left_won=left_won)


def link_facts(crm: RecordFate, ledger: RecordFate, crm_name: str, ledger_name: str, *, open_invoices: int = 0,
               links: dict[str, str] | None = None, ledger_names: dict[str, str] | None = None) -> LinkFacts:
    """``LinkFacts`` for one customer link; ``links``: CRM id -> linked customer id, to tell whether a CRM
    survivor is already linked to another customer."""
    other = (links or {}).get(crm.survivor_id or "") if crm.state == "merged" else None
    return LinkFacts(crm, ledger, crm_name, ledger_name, open_invoices, other,
                     (ledger_names or {}).get(other or "") or None)


# -- links ----------------------------------------------------------------------------------------
def link_actions(f: LinkFacts) -> Outcome:
    out: list[Action] = []
    out += _crm_side(f)
    out += _ledger_side(f)
    if not out:
        out.append(Action("close_flags", f"'{f.crm_name}' and '{f.ledger_name}' are both active.", code="link_ok"))
    return Outcome(tuple(out))


def _crm_side(f: LinkFacts) -> list[Action]:
    crm, name = f.crm, f.crm_name
    if crm.state == "merged" and crm.survivor_id:
        survivor = crm.survivor_name or crm.survivor_id
        if not crm.certain:
            return [Action("flag", f"'{name}' was deleted in the CRM and '{survivor}' has the same name: it looks "
                           f"merged into it. Link '{f.ledger_name}' to '{survivor}' if so.",
                           WayOut("link_to_survivor", f"Link to '{survivor}'", crm.survivor_id, "crm"),
                           code="crm_merged_maybe")]
        if f.survivor_linked_to and f.survivor_linked_to != f.ledger.id:
            other = f.survivor_linked_name or f.survivor_linked_to
            return [Action("flag", f"'{name}' was merged into '{survivor}' in the CRM, which is already linked to "
                           f"'{other}' in the ledger: two customers now stand for one company. Merge "
                           f"'{f.ledger_name}' into '{other}' in the ledger.",
                           WayOut("merge_in_ledger", f"Open '{f.ledger_name}' in the ledger", f.ledger.id),
                           code="crm_merged_two_customers")]
        return [Action("follow_crm", f"'{name}' was merged into '{survivor}' in the CRM; '{f.ledger_name}' now "
                       f"follows '{survivor}'.", target_id=crm.survivor_id, code="crm_merged")]
    if crm.state in ("deleted", "missing", "archived", "merged"):
        if f.open_invoices:
            many = "invoice is" if f.open_invoices == 1 else "invoices are"
            return [Action("flag", f"'{name}' was deleted in the CRM but {f.open_invoices} {many} still open for "
                           f"'{f.ledger_name}' in the ledger. Restore it in the CRM, or settle the invoices.",
                           WayOut("restore_in_crm", f"Restore '{name}' in the CRM", crm.id, "crm"),
                           code="crm_deleted_open_invoices")]
        return [Action("unlink", f"'{name}' was deleted in the CRM; '{f.ledger_name}' stays in the ledger and is "
                       "no longer synced.", code="crm_deleted")]
    return []


def _ledger_side(f: LinkFacts) -> list[Action]:
    led, name = f.ledger, f.ledger_name
    if led.state == "merged" and led.survivor_id:
        survivor = led.survivor_name or led.survivor_id
        return [Action("hold_invoices", f"'{name}' was merged into '{survivor}' in the ledger. New invoices for "
                       f"'{f.crm_name}' wait until it is linked to '{survivor}'.",
                       WayOut("link_to_survivor", f"Link '{f.crm_name}' to '{survivor}'", led.survivor_id),
                       target_id=led.survivor_id, code="ledger_merged")]
    if led.state == "archived":
        return [Action("hold_invoices", f"'{name}' is archived (inactive) in the ledger. New invoices for "
                       f"'{f.crm_name}' wait until it is made active again.",
                       WayOut("reactivate", f"Make '{name}' active again", led.id), code="ledger_archived")]
    if led.state in ("deleted", "missing"):
        return [Action("hold_invoices", f"'{name}' was deleted in the ledger. New invoices for '{f.crm_name}' "
                       "wait; unlink it and the next sync creates the customer again.",
                       WayOut("unlink", f"Unlink '{f.crm_name}'", f.crm.id, "crm"), code="ledger_deleted")]
    return []


# -- deals after invoicing --------------------------------------------------------------------------
def deal_actions(f: DealFacts, rule: DealRule = "flag") -> Outcome:
    inv = f"invoice {f.invoice_number or f.invoice_id}"
    void = f.invoice_status == "void"
    if f.won and void and not f.left_won:  # voided in the ledger while won: the reconciliation lists it
        return Outcome((Action("close_flags", f"'{f.deal_name}' is won and its {inv} was voided in the ledger.",
                               code="deal_settled"),))
    if f.won and void:
        return Outcome((Action("reinvoice", f"'{f.deal_name}' is won again and its {inv} was voided: it is "
                               "invoiced again.", target_id=f.invoice_id, code="deal_reopened_won"),))
    if not f.won:
        return Outcome(tuple(_not_won(f, rule, inv))) if not void else Outcome(
            (Action("close_flags", f"'{f.deal_name}' is no longer won and its {inv} is void.", code="deal_settled"),))
    if f.lines_changed:
        return Outcome(tuple(_lines_changed(f, rule, inv)))
    return Outcome((Action("close_flags", f"'{f.deal_name}' and its {inv} agree.", code="deal_settled"),))


def _owed(f: DealFacts) -> Decimal:
    return max(Decimal(0), money(f.invoice_total - f.credited))


def _not_won(f: DealFacts, rule: DealRule, inv: str) -> list[Action]:
    what = "was lost" if f.lost else "was reopened (no longer won)"
    base = f"'{f.deal_name}' {what} after it was invoiced"
    paid = f.amount_paid > 0
    code = "deal_lost" if f.lost else "deal_reopened"
    if rule == "void" or (rule == "credit" and f.invoice_status == "draft"):
        if not paid:
            return [Action("void_invoice", f"{base}; its {inv} had nothing paid, so it is voided.",
                           target_id=f.invoice_id, code=code)]
        return [_flag(f"{base}, but {inv} already has {f.currency} {f.amount_paid:,.2f} paid, so it is not voided. "
                      "Refund or credit the customer in the ledger.", f, "credit_note", code)]
    if rule == "credit":
        owed = _owed(f)
        if f.ledger not in LEDGERS_WITH_CREDIT_NOTES:
            return [_flag(f"{base}; this ledger has no credit notes Crossledger can raise.", f, "void", code)]
        if owed <= 0:
            return [Action("close_flags", f"{base}; its {inv} is credited in full already.", code="deal_settled")]
        return [Action("credit_note", f"{base}; a credit note for {f.currency} {owed:,.2f} is raised against {inv}.",
                       target_id=f.invoice_id, amount=owed, code=code)]
    way: WayOutKind = "void" if not paid else "credit_note"
    return [_flag(f"{base}. Void {inv} if the sale fell through, or leave it if the customer still pays.",
                  f, way, code)]


def _lines_changed(f: DealFacts, rule: DealRule, inv: str) -> list[Action]:
    diff = money(f.deal_total - (f.invoice_total - f.credited))
    base = (f"'{f.deal_name}' changed after it was invoiced: the deal is now {f.currency} {f.deal_total:,.2f}, "
            f"{inv} {f.currency} {f.invoice_total - f.credited:,.2f}")
    if diff == 0:
        return [Action("close_flags", f"'{f.deal_name}' and its {inv} agree.", code="deal_settled")]
    untouched = f.amount_paid == 0 and f.credited == 0
    if f.invoice_status == "draft" and f.drafts_follow:
        return [Action("update_invoice", f"{base}; the draft follows the deal.", target_id=f.invoice_id,
                       code="deal_lines")]
    if rule == "void" and untouched:
        return [Action("void_invoice", f"{base}; nothing was paid, so it is voided and the deal invoiced again.",
                       target_id=f.invoice_id, code="deal_lines"),
                Action("reinvoice", f"'{f.deal_name}' is invoiced again with its new lines.",
                       target_id=f.invoice_id, code="deal_lines")]
    if rule == "credit" and diff < 0 and f.ledger in LEDGERS_WITH_CREDIT_NOTES and f.invoice_status != "draft":
        return [Action("credit_note", f"{base}; a credit note for {f.currency} {-diff:,.2f} is raised against {inv}.",
                       target_id=f.invoice_id, amount=-diff, code="deal_lines")]
    if diff > 0:
        why = "The deal grew: invoice the difference, or edit the invoice in the ledger."
    elif rule == "void":
        why = "It has payments or credits, so it is not voided; credit the difference in the ledger."
    else:
        why = "Credit the difference, or edit the invoice in the ledger."
    follow: WayOutKind = "credit_note" if diff < 0 else "review_invoice"
    return [_flag(f"{base}. {why}", f, follow, "deal_lines")]


def _flag(reason: str, f: DealFacts, way: WayOutKind, code: str) -> Action:
    labels: dict[WayOutKind, str] = {"void": "Void the invoice", "credit_note": "Raise a credit note",
                                     "review_invoice": "Open the invoice"}
    return Action("flag", reason, WayOut(way, labels.get(way, "Open the invoice"), f.invoice_id),
                  target_id=f.invoice_id, code=code)
