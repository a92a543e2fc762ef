"""The cluster room: an embedded LocalCluster or an existing scheduler, progress, reports.

``with pipeline.cluster.connect() as client:`` gives a client registered as
Dask's default; :func:`compute_with_progress` runs tasks on it with a bar.
The dashboard (``client.dashboard_link``) is the monitor; Dask's own
``distributed.performance_report`` saves an HTML report.
"""

from ._connect import connect, default_workers, embedded_config
from ._progress import ProgressBar, compute_with_progress
from ._warm import warm_up

__all__ = ["connect", "default_workers", "embedded_config", "compute_with_progress", "ProgressBar", "warm_up"]
