"""What ``python -m icdmin reproduce`` writes: a checked folder, atomic files, a manifest, provenance, tables.

Every file goes to a temporary file in the output folder first and is then renamed over its name
(:func:`os.replace`), so a reader never sees half a file, and a symlink already sitting at that name is replaced
itself, never written through (a link to a file outside the folder stays untouched). ``manifest.json`` lists the
files of the last run with their sizes and SHA-256; the next run deletes the files of that list that it did not
write again, and only when they still have the recorded content, so a file icdmin did not write is never deleted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap

__all__ = ["MANIFEST", "Folder", "check_out_dir", "csv_text", "format_verdicts", "provenance", "remove_stale",
           "write_atomic", "write_manifest"]

MANIFEST = "manifest.json"
_TOOL = "icdmin reproduce"  # written into the manifest: only such manifests are trusted for clean-up


def check_out_dir(out) -> str:
    """Check that ``out`` is, or can be created as, a writable directory; create it. Returns ``out``.

    Raises TypeError / ValueError naming ``out`` (empty, an existing file, not creatable, not writable). The check
    writes and removes a temporary file, so that a read-only folder fails here, before any compute.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out: expected a directory path, got {type(out).__name__}")
    out = os.fspath(out)
    if not out.strip():
        raise ValueError("out: expected a directory path, got an empty string")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out: {out!r} exists and is not a directory")
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".icdmin-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"out: cannot write to directory {out!r}: {err.strerror or err}") from None
    return out


def _plain_name(name) -> bool:
    """True for a bare file name (no folder part, not hidden), the only names icdmin writes or deletes."""
    return isinstance(name, str) and name == os.path.basename(name) and name not in ("", ".", "..") \
        and not name.startswith(".")


def write_atomic(out: str, name: str, data) -> str:
    """Write ``data`` (str or bytes) to ``out/name`` through a temporary file and a rename; return the path."""
    if not _plain_name(name):
        raise ValueError(f"name: expected a bare file name, got {name!r}")
    raw = data.encode() if isinstance(data, str) else bytes(data)
    tmp = os.path.join(out, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open(..., "w")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, os.path.join(out, name))  # replaces a symlink itself, never its target
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return os.path.join(out, name)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(out: str, names) -> str:
    """Write ``out/manifest.json``: each of ``names`` (files in ``out``) with its size in bytes and SHA-256."""
    files = {name: {"bytes": os.path.getsize(os.path.join(out, name)), "sha256": _sha256(os.path.join(out, name))}
             for name in sorted(set(names))}
    return write_atomic(out, MANIFEST, json.dumps({"tool": _TOOL, "files": files}, indent=1, sort_keys=True) + "\n")


def _previous_files(out: str) -> dict:
    """The ``files`` of the manifest left in ``out`` by an earlier run; empty if absent or not icdmin's."""
    path = os.path.join(out, MANIFEST)
    if os.path.islink(path) or not os.path.isfile(path):
        return {}
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) and doc.get("tool") == _TOOL else None
    return files if isinstance(files, dict) else {}


def remove_stale(out: str, keep) -> list[str]:
    """Delete the files of the previous manifest that are not in ``keep``; return their names.

    A file is deleted only if it is a regular file (not a symlink) whose SHA-256 is still the one recorded, i.e.
    exactly what an earlier icdmin run wrote; anything else is left alone.
    """
    removed = []
    for name, record in sorted(_previous_files(out).items()):
        path = os.path.join(out, name)
        if name in keep or not _plain_name(name) or not isinstance(record, dict):
            continue
        if os.path.islink(path) or not os.path.isfile(path) or _sha256(path) != record.get("sha256"):
            continue
        os.remove(path)
        removed.append(name)
    return removed


class Folder:
    """An output folder being written: every file through :func:`write_atomic`, the names written so far, and at
    the end :meth:`close` (the earlier run's leftovers removed, the manifest written)."""

    def __init__(self, out: str):
        self.out, self.written = out, []

    def write(self, name: str, content) -> None:
        """Write ``content`` (text, or a dict written as sorted, indented JSON) to ``out/name``."""
        if isinstance(content, dict):
            content = json.dumps(content, sort_keys=True, indent=1, allow_nan=False) + "\n"
        write_atomic(self.out, name, content)
        self.written += [] if name in self.written else [name]

    def write_rendered(self, render):
        """Call ``render(folder) -> paths or None`` on a temporary folder inside ``out``, then rename each file
        into ``out`` (for writers that take a folder and would follow a symlink, e.g. matplotlib). Returns paths."""
        tmp = tempfile.mkdtemp(dir=self.out, prefix=".icdmin-tmp-")
        try:
            paths = render(tmp)
            for path in paths or []:
                name = os.path.basename(path)
                if not _plain_name(name) or os.path.dirname(os.path.abspath(path)) != os.path.abspath(tmp):
                    raise ValueError(f"render: expected files directly in {tmp!r}, got {path!r}")
                os.replace(path, os.path.join(self.out, name))
                self.written += [] if name in self.written else [name]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return paths

    def close(self) -> list[str]:
        """Remove the earlier run's leftovers (:func:`remove_stale`), write the manifest; return the removed names."""
        removed = remove_stale(self.out, set(self.written))
        write_manifest(self.out, self.written)
        return removed


def csv_text(table: dict) -> str:
    """A result's ``table`` (``columns``, ``rows``; None as an empty cell) as CSV text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table["columns"])
    for row in table["rows"]:
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def format_verdicts(rows: list[dict]) -> str:
    """The verdict table as text: one block per claim, cells wrapped to fixed column widths."""
    cols = [("claim", 30), ("paper says", 24), ("icdmin measured", 38), ("authors' code", 18), ("holds?", 30)]
    head = " | ".join(f"{name:<{width}}" for name, width in cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = [r["claim"], r["paper"], r["measured"], r["authors"] or "-",
                 ("yes" if r["holds"] else "NO") + f": {r['tolerance']}"]
        wrapped = [textwrap.wrap(c, w) or [""] for c, (_, w) in zip(cells, cols)]
        for parts in itertools.zip_longest(*wrapped, fillvalue=""):
            lines.append(" | ".join(f"{p:<{w}}" for p, (_, w) in zip(parts, cols)).rstrip())
    return "\n".join(lines)


def _git_commit(root: str):
    """(commit, dirty) of the git checkout at ``root``, or (None, None) when it is not one or git is missing."""
    if not os.path.exists(os.path.join(root, ".git")):
        return None, None
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        diff = subprocess.run(["git", "-C", root, "diff", "--quiet", "HEAD", "--"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None, None
    commit = head.stdout.strip() if head.returncode == 0 else None
    return commit, (None if commit is None or diff.returncode not in (0, 1) else diff.returncode == 1)


def provenance() -> dict:
    """Where a results.json comes from: icdmin's version and git commit (None outside a checkout), the versions of
    Python, NumPy, SciPy and Numba (None if absent), the CPU count and the command line."""
    import numpy
    import scipy

    from . import __version__

    commit, dirty = _git_commit(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    numba = sys.modules.get("numba")
    return {"icdmin": __version__, "git_commit": commit, "git_dirty": dirty, "python": platform.python_version(),
            "numpy": numpy.__version__, "scipy": scipy.__version__,
            "numba": getattr(numba, "__version__", None), "cpu_count": os.cpu_count(), "argv": list(sys.argv)}
