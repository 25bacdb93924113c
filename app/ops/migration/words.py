"""The migration's plan and outcome in a bookkeeper's words."""

from __future__ import annotations

from typing import Any

from app.connectors import registry
from app.domain.models import PARTY_FIELDS
from app.domain.text import plural
from app.ops.migration.estimate import ACTIONS, MigrationResult, RowView

provider_words = registry.label

# -- words for people ----------------------------------------------------------------------------
FIELD_WORDS = {"email": "email", "phone": "phone", "address_line1": "address", "address_line2": "address line 2",
               "city": "city", "region": "region", "postal_code": "postcode", "country": "country",
               "tax_id": "tax ID", "name": "name"}
ROWS_SHOWN = 20


def _changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    before, after = before or {}, after or {}
    return [FIELD_WORDS.get(f, f) for f in PARTY_FIELDS if f != "name" and after.get(f) != before.get(f)]


def _row_line(r: RowView, res: MigrationResult) -> str:
    mark = " (left out)" if r.excluded else ""
    if r.action == "link":
        parts = []
        if filled := _changed(r.before.get("ledger"), r.after.get("ledger")):
            parts.append(f"{res.ledger_label} gets {', '.join(filled)}")
        if filled := _changed(r.before.get("crm"), r.after.get("crm")):
            parts.append(f"{res.crm_label} gets {', '.join(filled)}")
        what = "; ".join(parts) or "nothing to fill in"
        return f"#{r.id} {r.name}{mark}: {r.explanation}. {what}"
    if r.action == "create_ledger":
        shown = (r.after.get("ledger") or {}).get("display_name") or r.name
        extra = f" {r.explanation}" if r.explanation else ""
        return f"#{r.id} {shown}{mark}{extra}"
    if r.action == "create_crm":
        return f"#{r.id} {r.name}{mark}"
    return f"#{r.id} {r.name}{mark}: {r.explanation}"


def deals_sentence(deals: dict[str, int], ledger: str) -> str:
    """The won deals' outlook in one paragraph (the migration writes nothing for them; the first sync does)."""
    won, before, to_invoice = deals.get("won", 0), deals.get("invoiced_before", 0), deals.get("to_invoice", 0)
    parts = []
    if before:
        parts.append(f"{before:,} already {'has' if before == 1 else 'have'} an invoice in {ledger}, which the first "
                     "sync links instead of making another")
    if to_invoice:
        parts.append("all will be invoiced by the first sync after the migration" if to_invoice == won else
                     f"{to_invoice:,} will be invoiced by it")
    if deals.get("unsure"):
        parts.append(f"{deals['unsure']:,} fit more than one existing invoice and wait for you under Held back")
    if deals.get("already_invoiced"):
        parts.append(f"{deals['already_invoiced']:,} were invoiced through Crossledger before")
    return f"  {won:,} won deal{'' if won == 1 else 's'}" + (": " + "; ".join(parts) if parts else "") + "."


def describe_result(res: MigrationResult) -> str:
    """The plan or the outcome, in a bookkeeper's words, with what to do next."""
    name, crm, ledger = res.workspace, res.crm_label, res.ledger_label
    c = res.counts
    lines: list[str] = []
    if res.status == "nothing_to_do":
        return (f"The migration of '{name}' was already applied, so there is nothing left to do. From now on the "
                "regular sync keeps both sides in step.")
    if res.mode in ("dry_run", "exclude"):
        lines.append(f"Migration plan for '{name}' (plan {res.plan_id}). This was a dry run: nothing was written.")
    else:
        lines.append(f"Migration of '{name}' (plan {res.plan_id}). The plan was:")
    lines += [
        f"  Link   {c.get('link', 0):>6,}  {crm} records to customers already in {ledger}",
        f"  Create {c.get('create_ledger', 0):>6,}  customers in {ledger}",
        f"  Create {c.get('create_crm', 0):>6,}  records in {crm} for {ledger} customers it does not have yet",
        f"  Skip   {c.get('invalid', 0):>6,}  records that are not valid (each with what to correct)",
        f"  Review {c.get('review', 0):>6,}  possible matches to check by hand",
    ]
    if res.already_linked:
        lines.append(f"  {plural(res.already_linked, 'record was', 'records were')} linked before and "
                     f"{'is' if res.already_linked == 1 else 'are'} left to the regular sync.")
    if res.excluded:
        lines.append(f"  {plural(res.excluded, 'row is', 'rows are')} left out at your request.")
    if res.deals.get("won"):
        lines.append(deals_sentence(res.deals, ledger))
    if res.mode in ("dry_run", "exclude"):
        est = res.estimate
        lines.append(f"Applying it takes {est.text} within {ledger}'s and {crm}'s limits "
                     f"({plural(est.acct_calls + est.crm_calls, 'write call')}).")
        if est.note:
            lines.append(est.note)
        titles = {"link": "Will be linked", "create_ledger": f"Will be created in {ledger}",
                  "create_crm": f"Will be created in {crm}", "invalid": "Skipped: not valid",
                  "review": "To review by hand"}
        lines.append("\nRows (leave one out with --exclude ROW):")
        for action in ACTIONS:
            rows = [r for r in res.rows if r.action == action]
            if not rows:
                continue
            lines.append(f"  {titles[action]}:")
            lines += [f"    {_row_line(r, res)}" for r in rows[:ROWS_SHOWN]]
            if len(rows) > ROWS_SHOWN:
                lines.append(f"    … and {len(rows) - ROWS_SHOWN:,} more (add --json to see every row).")
        lines.append(f"\nNext: check the rows, then run 'crossledger migrate \"{name}\" --apply'. The apply does "
                     "exactly this plan and nothing else.")
        return "\n".join(lines)
    d = res.done
    held = plural(d.get('invalid', 0) + d.get('review', 0), 'record is', 'records are')
    lines.append(f"  Done: linked {d.get('link', 0):,}, created {d.get('create_ledger', 0):,} in {ledger} and "
                 f"{d.get('create_crm', 0):,} in {crm}; {held} on the held-back list to correct or review "
                 f"({plural(res.writes, 'record')} written).")
    for err in res.errors[:10]:
        lines.append(f"  ! {err}")
    if res.status == "applied":
        lines.append("Everything in the plan is done. From now on the regular sync keeps both sides in step.")
    elif res.status == "partial":
        lines.append("The plan is done, but some records were refused (above). Correct them where it says, and "
                     "the regular sync picks them up.")
    else:
        lines.append(f"The migration stopped before the end. Run 'crossledger migrate \"{name}\" --apply' again to "
                     "continue: what is done already is not repeated.")
    return "\n".join(lines)
