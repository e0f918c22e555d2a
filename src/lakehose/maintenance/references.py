"""Which files a table's snapshots reference: what may be deleted is decided from this alone."""

from __future__ import annotations

from collections.abc import Iterable

from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestFile
from pyiceberg.table.snapshots import Snapshot


class References:
    """Files reachable from snapshots, each manifest read at most once per instance.

    One expiry asks three times (what the expired snapshots reached, what the
    kept ones reach, what the sweep must keep) over mostly the same manifests,
    and a merged manifest of a big table holds thousands of entries; a manifest
    never changes once written, so its entries are kept by path.
    """

    def __init__(self, io: FileIO) -> None:
        self.io = io
        self._entries: dict[tuple[str, bool], dict[str, int]] = {}

    def _files(self, manifest: ManifestFile, live_only: bool) -> dict[str, int]:
        key = (manifest.manifest_path, live_only)
        if key not in self._entries:
            self._entries[key] = {entry.data_file.file_path: entry.data_file.file_size_in_bytes
                                  for entry in manifest.fetch_manifest_entry(self.io, discard_deleted=live_only)}
        return self._entries[key]

    def reachable(self, snapshots: Iterable[Snapshot], live_only: bool) -> dict[str, int]:
        """``{location: bytes}`` of the snapshots' manifest lists, manifests and data (and delete) files.

        ``live_only`` leaves out files a manifest records as deleted by its
        snapshot: those are not part of it. A manifest list's size is not known
        here (0).
        """
        found: dict[str, int] = {}
        for snapshot in snapshots:
            found[snapshot.manifest_list] = 0
            for manifest in snapshot.manifests(self.io):
                if manifest.manifest_path not in found:
                    found[manifest.manifest_path] = manifest.manifest_length
                    found.update(self._files(manifest, live_only))
        return found
