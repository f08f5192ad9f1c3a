"""Small helpers shared by every layer: atomic file writes and finite floats for JSON.

Standard library only, and nothing from the package: any module may import it.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets

__all__ = ["atomic_file", "atomic_write_json", "finite", "STOP_FILE"]

#: The file that asks a run or a study to stop when it appears in its directory (the JupyterLab
#: sidebar's Stop writes it through ``workbench.runs.request_stop``; the training and tuning
#: listeners poll for it).
STOP_FILE = "workbench-stop-request"


@contextlib.contextmanager
def atomic_file(path, binary=False, *, fsync=False):
    """Write ``path`` atomically: yields a new temporary file in the same directory, which
    replaces ``path`` in one rename on a clean exit (a reader sees the old file or the new one,
    never a part), and is removed on an error (``path`` untouched).

    Thread- and process-safe: each call has its own temporary name (random, created with
    ``O_EXCL``), so concurrent writers of one path never write the same file; the last rename
    wins.  ``fsync``: flush the data to disk before the rename (survives a power loss).
    """
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb" if binary else "x") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path, document):
    """Write ``document`` to ``path`` as JSON, atomically (see :func:`atomic_file`).  NaN and
    infinities are refused (ValueError: strict JSON); objects JSON does not know are written as
    ``str()``."""
    with atomic_file(path) as f:
        json.dump(document, f, allow_nan=False, default=str)


def finite(x, default=None):
    """``x`` as a float if it is a finite number, else ``default`` (NaN, infinities, None and
    anything ``float()`` refuses)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default
