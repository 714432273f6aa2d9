"""Dataset snapshots: export of aggregated labels and raw votes, and reading them back."""

from backend.services.snapshots.service import (
    FILES,
    SnapshotResult,
    create_snapshot,
    list_snapshots,
    open_snapshot_file,
)

__all__ = ["FILES", "SnapshotResult", "create_snapshot", "list_snapshots", "open_snapshot_file"]
