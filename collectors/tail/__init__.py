"""Container-log tail for Kubernetes node layouts (`/var/log/pods`, `/var/log/containers`), as a library.

`Tailer` (tailer.py) follows the files and yields `TailBatch`es on demand; `formats` parses CRI and Docker
json-file lines; `paths` says which pod and container a file belongs to; `records` turns lines into
`LogRecord`s once the pod's labels are known. `python -m collectors.tail.bench` measures throughput.
"""

from collectors.tail.model import Checkpoint, FilePosition, TailBatch, TailedLine
from collectors.tail.paths import PodContainer, parse_log_path
from collectors.tail.tailer import TailConfig, Tailer, TailStats

__all__ = [
    "Checkpoint",
    "FilePosition",
    "PodContainer",
    "TailBatch",
    "TailConfig",
    "TailStats",
    "TailedLine",
    "Tailer",
    "parse_log_path",
]
