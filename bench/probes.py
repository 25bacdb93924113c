"""Figures measured in a process of their own, so that its peak RSS and start-up are its own.

    python -m bench.probes coldstart HOME     # CPU and clock at the window's first paint, and when it shows the data
    python -m bench.probes workbook N         # reconciliation workbook for N won deals
    python -m bench.probes uisync N [LEDGER]  # N-record sync in the real MainWindow, heartbeat + peak RSS

Each prints one JSON line on stdout; ``bench.__main__`` starts them and reads it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def coldstart(home: str) -> None:
    """``crossledger --home HOME gui`` as the entry point runs it (store first, then the window): the
    process's CPU at the main window's first paint event, and at the first paint after the window has
    read and shown the workspaces (``ready``: the list and the selected workspace's page filled in)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app import cli

    real_gui = cli._gui

    def cpu() -> float:
        use = resource.getrusage(resource.RUSAGE_SELF)
        return round(use.ru_utime + use.ru_stime, 3)

    def gui(args: object, home_: object, store: object, **kw: object) -> int:
        from PySide6.QtCore import QEvent, QObject, QTimer
        from PySide6.QtWidgets import QWidget

        from app.ui.app import make_application
        from app.ui.main_window import MainWindow

        app = make_application()  # run_gui reuses it
        seen: dict[str, object] = {}

        class Paints(QObject):
            def eventFilter(self, obj: QObject, event: QEvent) -> bool:
                if event.type() != QEvent.Type.Paint or not isinstance(obj, QWidget):
                    return False
                window = obj.window()
                if not isinstance(window, MainWindow) or "ready" in seen:
                    return False
                if "first_paint" not in seen:
                    seen.update(first_paint=time.time(), cpu_seconds=cpu(), modules=len(sys.modules))
                if window.is_loaded:
                    seen.update(ready=time.time(), ready_cpu_seconds=cpu(),
                                workspaces_shown=window.list_model.rowCount(),
                                page_shows=window.page.workspace.name if window.page.workspace else None)
                    print(json.dumps(seen), flush=True)
                    QTimer.singleShot(0, app.quit)
                return False

        spy = Paints()
        app.installEventFilter(spy)
        return real_gui(args, home_, store, **kw)

    cli._gui = gui
    cli.main(["--home", home, "gui"])


def workbook(n: int) -> None:
    """Reconcile a month of ``n`` won deals against their invoices and write the workbook."""
    import datetime as dt
    import random
    import tempfile
    from decimal import Decimal
    from pathlib import Path

    from app.domain.models import Deal, Invoice, InvoiceLine, LineItem, Party, Payment
    from app.reconcile.engine import MonthData, reconcile
    from app.reconcile.workbook import write_workbook
    from bench.harness import peak_rss_mb, rss_mb

    base = rss_mb()
    rng = random.Random(12)
    customers = {f"C{i}": Party(kind="company", name=f"Customer {i} Ltd", email=f"accounts@customer{i}.com")
                 for i in range(max(1, n // 10))}
    ids = list(customers)
    deals, invoices, payments, deal_invoice, company_customer = [], [], [], {}, {}
    for i in range(n):
        cust = ids[i % len(ids)]
        company_customer[f"co{cust}"] = cust
        qty, price = Decimal(rng.randint(1, 20)), Decimal(rng.choice(["125.00", "950.00", "19.99", "333.33"]))
        day = dt.date(2026, 9, 1 + i % 30)
        deal = Deal(f"D{i}", f"Deal {i}", True, "GBP", qty * price, day, f"co{cust}",
                    line_items=(LineItem("Consulting hour", qty, price, sku="CONS-HR"),))
        deals.append(deal)
        if i % 100 == 7:  # won, never invoiced
            continue
        total = qty * price + (Decimal("10.00") if i % 50 == 3 else 0)  # a few amounts differ
        inv = Invoice(f"I{i}", cust, "GBP", (InvoiceLine("Consulting hour", qty, price, amount=total),),
                      reference=f"deal:{i}", number=f"INV-{i:05d}", issue_date=day, due_date=day + dt.timedelta(30),
                      total=total, amount_paid=total if i % 2 else Decimal(0), balance=Decimal(0) if i % 2 else total,
                      status="paid" if i % 2 else "awaiting_payment")
        invoices.append(inv)
        deal_invoice[deal.id] = inv.id
        if i % 2:
            payments.append(Payment(f"P{i}", inv.id, total, "GBP", day + dt.timedelta(10)))
    data = MonthData("2026-09", deals, invoices, payments, customers,
                     customer_names={k: p.name for k, p in customers.items()}, deal_invoice=deal_invoice,
                     company_customer=company_customer)
    loaded = rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        start, cpu_start = time.perf_counter(), time.process_time()
        report = reconcile(data)
        mid = time.perf_counter()
        path = write_workbook(report, Path(folder) / "reconcile.xlsx", workspace="Bench", crm_label="HubSpot",
                              ledger_label="QuickBooks Online")
        end, cpu = time.perf_counter(), time.process_time() - cpu_start
        size = path.stat().st_size
    print(json.dumps({"deals": n, "invoices": len(invoices), "discrepancies": len(report.discrepancies),
                      "seconds": round(end - start, 3), "cpu_seconds": round(cpu, 3),
                      "reconcile_seconds": round(mid - start, 3),
                      "write_seconds": round(end - mid, 3), "workbook_bytes": size,
                      "rss_start_mb": round(base, 1), "rss_with_data_mb": round(loaded, 1),
                      "peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)


def uisync(n: int, ledger: str = "quickbooks", interval_ms: int = 10, tail_ms: int = 4000) -> None:
    """The real MainWindow, Sync now on a workspace of ``n`` new CRM companies: the run goes through
    the window's SyncController and BackgroundJob as in the app, with a QTimer heartbeat on the UI
    thread measuring the longest gap. The sandboxes live in this process too (in-process transport),
    so the peak RSS counts them as well as the app: an upper bound on the app's own."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from bench.harness import World, peak_rss_mb, rss_mb, seed_companies

    base = rss_mb()
    from bench.figures import NO_LIMIT

    w = World("hubspot", ledger, crm_seed="empty", acct_seed="empty", settings=NO_LIMIT)
    seed_companies(w.crm.sandbox, n)
    seeded = rss_mb()

    from PySide6.QtCore import QTimer

    from app.connectors.tokens import MemoryTokenStore
    from app.store.models import Run
    from app.sync.engine import SyncEngine
    from app.ui.app import make_application
    from app.ui.main_window import MainWindow

    app = make_application()

    def sync(store, tokens, name, *, trigger="manual", progress=None, cancel=None, **kw):
        return SyncEngine(store, w.ws_id, w.crm.connector, w.acct.connector, trigger=trigger, progress=progress,
                          cancel=cancel, **kw).run()

    window = MainWindow(w.store, MemoryTokenStore(), sync=sync)
    window.resize(1280, 800)
    window.show()
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)
    before_sync = rss_mb()
    last = [time.perf_counter()]
    # The process's CPU during each gap too: on a loaded machine a gap also holds the time the process was not
    # running at all; its CPU is what the gap costs on a quiet one (with 2 cores, slightly more: a thread
    # outside the GIL, sqlite's say, counts beside the one that holds it)
    last_cpu = [time.process_time()]
    beats: list[tuple[float, float, float]] = []  # (when the gap began, its length, the process's CPU in it)

    def beat() -> None:
        now, cpu = time.perf_counter(), time.process_time()
        beats.append((last[0], now - last[0], cpu - last_cpu[0]))
        last[0], last_cpu[0] = now, cpu

    timer = QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(beat)
    ended: list[float] = []
    # a few beats after the run so the page's reload at the end is measured too (the figure: 0.3 s), then
    # on to ``tail_ms`` to see what comes later (the full garbage collection held off while the run lasted)
    window.sync.finished.connect(lambda *_: (ended.append(time.perf_counter()),
                                             QTimer.singleShot(max(300, tail_ms), app.quit)))
    timer.start()
    start = last[0] = time.perf_counter()
    last_cpu[0] = time.process_time()
    load_before = os.getloadavg()[0]
    window.sync_selected()
    app.exec()
    timer.stop()
    with w.store.session() as s:
        run = s.query(Run).order_by(Run.id.desc()).first()
        status, counts = run.status, dict(run.counts or {})
    end = ended[0] if ended else time.perf_counter()
    during = [b for b in beats if b[0] < end + 0.3] or [(end, float("nan"), float("nan"))]
    later = [b for b in beats if b[0] >= end + 0.3] or [(end, 0.0, 0.0)]
    worst = max(during, key=lambda b: b[1])
    worst_cpu = max(during, key=lambda b: b[2])
    later_worst = max(later, key=lambda b: b[1])
    later_cpu = max(later, key=lambda b: b[2])
    gaps = sorted(b[1] for b in during)
    print(json.dumps({"records": n, "ledger": ledger, "status": status, "created": counts.get("created"),
                      "sync_seconds": round(end - start, 2),
                      "heartbeat_ms": interval_ms, "beats": len(during),
                      "max_gap_ms": round(worst[1] * 1000, 1),
                      "stall_ms": round(max(0.0, worst[1] * 1000 - interval_ms), 1),
                      "p99_gap_ms": round(gaps[int(len(gaps) * 0.99)] * 1000, 1),
                      # where the longest stall was: during the run, or after it (the page reading its rows)
                      "worst_gap_after_run": worst[0] >= end - 0.001,
                      "worst_gap_seconds_before_end": round(end - worst[0], 3),
                      "max_gap_cpu_ms": round(worst_cpu[2] * 1000, 1),
                      "stall_cpu_ms": round(max(0.0, worst_cpu[2] * 1000 - interval_ms), 1),
                      "worst_cpu_gap_seconds_before_end": round(end - worst_cpu[0], 3),
                      # 0.3 s to tail_ms after the run: not the figure, shown beside it
                      "later": {"until_seconds_after_run": round(max(300, tail_ms) / 1000, 1),
                                "max_gap_ms": round(later_worst[1] * 1000, 1),
                                "at_seconds_after_run": round(later_worst[0] - end, 3),
                                "max_gap_cpu_ms": round(later_cpu[2] * 1000, 1),
                                "cpu_at_seconds_after_run": round(later_cpu[0] - end, 3)},
                      "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                      "rss_start_mb": round(base, 1), "rss_seeded_mb": round(seeded, 1),
                      "rss_window_mb": round(before_sync, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)
    window.close()
    w.close()


def main() -> None:
    what, *args = sys.argv[1:]
    if what == "coldstart":
        coldstart(args[0])
    elif what == "workbook":
        workbook(int(args[0]))
    elif what == "uisync":
        uisync(int(args[0]), *(args[1:2] or ["quickbooks"]))
    else:
        raise SystemExit(f"unknown probe {what!r}")


if __name__ == "__main__":
    main()
