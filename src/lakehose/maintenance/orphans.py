"""Delete the files in a table's folders that nothing references, once they are old enough.

Who leaves such files: a commit that failed or was killed after writing its
Parquet files and manifests, a compaction that lost its race, and every
``metadata.json`` older than the ones the metadata log keeps
(``write.metadata.previous-versions-max``, 100 by default).

What is kept: every file reachable from a snapshot of the table's current
metadata, that metadata file and the ones its log lists, statistics files —
and any file younger than the grace period, whatever it is, because a commit
in flight has written its files but not yet published them. The grace period
must therefore be longer than the slowest commit (a compaction of a big
partition writes all its files before it commits).

Listing and deleting go through pyiceberg's own ``PyArrowFileIO``
filesystem, with the same S3 options as every writer, so ``file://`` and
``s3://`` warehouses are swept alike. Before deleting anything, every
referenced file under the table's folders must have been seen in the
listing: if one is missing, paths are not spelled the way the listing spells
them (or the table is already damaged), and nothing is deleted.
"""

from __future__ import annotations

import itertools

from pyarrow.fs import FileSelector, FileType
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

from lakehose.errors import LakehoseError
from lakehose.maintenance.jobs import table_name
from lakehose.maintenance.references import References

FOLDERS = ("data", "metadata")


def delete_orphans(table: Table, grace_seconds: float, now: float,
                   references: References) -> tuple[int, int]:
    """Delete unreferenced files older than ``grace_seconds`` at ``now``; (files, bytes) deleted."""
    io = table.io
    if not isinstance(io, PyArrowFileIO):
        raise LakehoseError(f"{table_name(table)}: cannot list files through {type(io).__name__}")
    table.refresh()
    metadata = table.metadata
    locations = itertools.chain(
        references.reachable(metadata.snapshots, live_only=True), [table.metadata_location],
        (entry.metadata_file for entry in metadata.metadata_log),
        (stats.statistics_path for stats in metadata.statistics),
        (stats.statistics_path for stats in metadata.partition_statistics))
    referenced = {io.parse_location(location)[2] for location in locations}
    scheme, netloc, root = io.parse_location(table.location())
    fs = io.fs_by_scheme(scheme, netloc)
    folders = tuple(f"{root.rstrip('/')}/{folder}/" for folder in FOLDERS)
    listed = [info for folder in folders
              for info in fs.get_file_info(FileSelector(folder, recursive=True, allow_not_found=True))
              if info.type == FileType.File]
    unseen = {path for path in referenced if path.startswith(folders)} - {info.path for info in listed}
    if unseen:
        raise LakehoseError(f"{table_name(table)}: {len(unseen)} referenced files were not found "
                            f"under {root} (e.g. {min(unseen)}); deleting nothing")
    deleted = size = 0
    for info in listed:
        if info.path in referenced or info.mtime is None or info.mtime.timestamp() > now - grace_seconds:
            continue
        try:
            fs.delete_file(info.path)
        except FileNotFoundError:
            continue  # another sweep got there first
        deleted += 1
        size += info.size or 0
    return deleted, size
