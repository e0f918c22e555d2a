"""``lakehose maintain``: retention, compaction and expiry on a schedule; ``lakehose up`` runs it.

Every ``[maintenance] interval_seconds``, over every table: retention first
(so compaction does not rewrite what is about to go), then compaction, then
expiry (which deletes what the first two replaced). The first run comes one
interval after the start, so a process restarted often, or a short test, does
not pay for it; ``--once`` runs everything now and exits, for cron or a
Kubernetes CronJob.

It is a process of its own, not a thread of delivery: a compaction reads and
writes hundreds of MiB and would stall delivery's commits, and a crash here
must leave delivery running. Several maintainers may run against one lake
(each commit is safe against the others); one is enough. SIGTERM stops it
between tables and partitions; one killed mid-rewrite leaves only files no
snapshot references, which a later expiry sweeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from lakehose import logs
from lakehose.config import Settings
from lakehose.maintenance.compact import compact
from lakehose.maintenance.expire import expire
from lakehose.maintenance.jobs import Outcome
from lakehose.maintenance.retention import retention

_LOG = logs.Logger("maintenance")
Job = Callable[..., Sequence[Outcome[Any]]]
JOBS: tuple[tuple[str, Job], ...] = (("retention", retention), ("compact", compact), ("expire", expire))


def run_once(settings: Settings, stop: threading.Event) -> bool:
    """Every job over every table, once; False if any failed somewhere. One log line per job."""
    ok = True
    for name, job in JOBS:
        if stop.is_set():
            break
        try:
            outcomes = job(settings, stop=stop)
        except Exception as exc:  # the catalog is down, say: the next run tries again
            _LOG.error(f"{name}_failed", f"{name}: {exc!r}")
            ok = False
            continue
        failed = {o.table: o.error for o in outcomes if o.error is not None}
        done = {o.table: str(o.result) for o in outcomes if o.error is None}
        if failed:
            ok = False
            _LOG.error(f"{name}_failed", f"{name} failed on {', '.join(failed)}", failed=failed, done=done)
        else:
            _LOG.info(f"{name}_done", f"{name} done on {len(done)} tables", done=done)
    return ok


def run_maintenance(settings: Settings, stop: threading.Event) -> None:
    """Run every job each interval until ``stop`` is set."""
    while not stop.wait(settings.maintenance.interval_seconds):
        run_once(settings, stop)
