"""Files that must never be lost or half-written: atomic replacement, JSON-lines logs, run-folder locks.

The lowest layer of graphflow next to ``errors``: it knows files, not graphs or arrays, so that the
trainer, inspection runs and the pictures share one writer and one log reader.
"""

from graphflow.io.atomic import DAMAGED_FILE_ERRORS, atomic_write, atomic_write_text, remove_temporaries
from graphflow.io.faults import kill_point
from graphflow.io.jsonl import append_record, read_records, rewrite_records
from graphflow.io.lock import FolderLock
from graphflow.io.reading import read_failure

__all__ = ["DAMAGED_FILE_ERRORS", "FolderLock", "append_record", "atomic_write", "atomic_write_text", "kill_point", "read_failure", "read_records",
           "remove_temporaries", "rewrite_records"]
