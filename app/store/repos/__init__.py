"""The store as the sync, the migration and the undo see it: a few repositories, one per kind of
record a run keeps (links, journal, mirror, runs, quarantine, conflicts), each bound to one workspace
and returning plain dataclasses rather than ORM rows."""

from app.store.repos.conflicts import ConflictRecord, Conflicts
from app.store.repos.journal import Done, JournalEntry, JournalRecord, JournalRepo
from app.store.repos.links import LinkRecord, Links, SnapshotWrite
from app.store.repos.mirror import MirrorRecord, MirrorRepo
from app.store.repos.quarantine import HeldRecord, Hold, QuarantineRepo
from app.store.repos.runs import Cursors, Runs, WorkspaceRepo

__all__ = ["ConflictRecord", "Conflicts", "Cursors", "Done", "HeldRecord", "Hold", "JournalEntry", "JournalRecord",
           "JournalRepo", "LinkRecord", "Links", "MirrorRecord", "MirrorRepo", "QuarantineRepo", "Runs",
           "SnapshotWrite", "WorkspaceRepo"]
