"""Ingest of uploaded runs: a ``run.json`` or a zip of a run directory, validated and saved.

Nothing uploaded is unpickled or evaluated: JSON is parsed and validated against
:class:`harness.core.records.RunRecord`; Parquet members are checked by reading their schema.
Paths are checked before anything is written: a zip member with an absolute path, ``..`` or a
backslash is refused, raw files must be ``raw/<name>.parquet`` inside the run directory, and
the run id must be a plain directory name. An existing run is never overwritten. Sizes are in
bytes.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from harness.core.records import RunRecord
from harness.store.results import ResultsError, atomic_write_bytes, parse_run

#: uploads (and zips unpacked) larger than this many bytes are refused before they are parsed
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class UploadResult:
    """Outcome of one uploaded file: ``ok`` with the saved ``run_id``, or a message saying
    what is wrong with which file."""

    name: str
    ok: bool
    message: str
    run_id: str | None = None


@dataclass(frozen=True)
class _Unpacked:
    """A validated upload: the record, raw files (path in the run directory -> bytes), notes."""

    run: RunRecord
    files: dict[str, bytes]
    notes: list[str]


def check_run_id(run: RunRecord, source: str) -> None:
    """Raise :class:`ResultsError` unless ``run.run_id`` is a safe directory name."""
    if not _RUN_ID_RE.match(run.run_id) or run.run_id in (".", ".."):
        raise ResultsError(
            f"{source}: field run_id: {run.run_id!r} is not a valid run id "
            "(letters, digits, '.', '_', '-'; at most 200 characters)"
        )


def parse_json_bytes(data: bytes, source: str) -> RunRecord:
    """A run record from the bytes of a ``run.json``; errors name ``source`` and the field."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ResultsError(f"{source}: not UTF-8 text; expected a run.json file") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise ResultsError(f"{source}: JSON nested too deeply; expected a run.json file") from None
    run = parse_run(obj, source)
    check_run_id(run, source)
    return run


def safe_member(name: str) -> PurePosixPath | None:
    """``name`` as a relative path, or None when it is absolute, climbs out (``..``) or uses
    backslashes."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name:
        return None
    return p


def _raw_files(run: RunRecord) -> list[str]:
    out = []
    for c in run.cells:
        for rel in (c.raw_file, c.tokens_file):
            if rel:
                out.append(rel)
    return out


def _check_raw_path(rel: str, source: str) -> PurePosixPath:
    p = safe_member(rel)
    if p is None or not p.parts or p.parts[0] != "raw" or p.suffix != ".parquet":
        raise ResultsError(f"{source}: raw file path {rel!r} must be raw/<name>.parquet inside the run directory")
    return p


def ingest_upload(name: str, data: bytes, root: Path) -> UploadResult:
    """Validate an uploaded ``run.json`` (or a zip of a run directory) named ``name`` and save
    it under ``root/<run_id>/`` (atomic writes). Refuses to overwrite an existing run. Errors
    come back as ``ok=False`` with a message naming the file and the field; nothing is saved
    then."""
    try:
        if len(data) > MAX_UPLOAD_BYTES:
            raise ResultsError(f"{name}: {len(data):,} bytes is over the {MAX_UPLOAD_BYTES:,}-byte upload limit")
        if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            up = read_zip(name, data)
        else:
            run = parse_json_bytes(data, name)
            notes = []
            if _raw_files(run):
                notes.append("per-query data not uploaded (upload a zip of the run directory to include it)")
            up = _Unpacked(run, {}, notes)
        dest = Path(root) / up.run.run_id
        if dest.exists():
            raise ResultsError(f"{name}: run {up.run.run_id} is already in the results store ({dest})")
        try:
            for rel, blob in up.files.items():
                atomic_write_bytes(dest / rel, blob)
            atomic_write_bytes(dest / "run.json", up.run.model_dump_json(indent=1).encode())
        except OSError as exc:
            raise ResultsError(f"{name}: cannot save into {dest}: {exc.strerror or exc}") from None
        msg = f"saved run {up.run.run_id} ({len(up.run.cells)} cells)"
        if up.notes:
            msg += "; " + "; ".join(up.notes)
        return UploadResult(name, True, msg, up.run.run_id)
    except ResultsError as exc:
        return UploadResult(name, False, str(exc))


def read_zip(name: str, data: bytes) -> _Unpacked:
    """Validate a zip of a run directory: exactly one ``run.json`` (at the top or in one
    folder), safe member paths, at most :data:`MAX_UPLOAD_BYTES` unpacked, and each raw file
    the record names a readable Parquet file (a missing one is noted, not an error). A damaged,
    encrypted or unsupported archive raises :class:`ResultsError` naming the upload."""
    try:
        return _read_zip(name, data)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        # zipfile raises these for a corrupt member, a bad CRC, encryption or an unknown method
        raise ResultsError(f"{name}: not a readable zip file ({type(exc).__name__}: {exc})") from None


def _read_zip(name: str, data: bytes) -> _Unpacked:
    zf = zipfile.ZipFile(io.BytesIO(data))
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if sum(i.file_size for i in infos) > MAX_UPLOAD_BYTES:
            raise ResultsError(f"{name}: unpacks to more than {MAX_UPLOAD_BYTES:,} bytes")
        members = {}
        for i in infos:
            p = safe_member(i.filename)
            if p is None:
                raise ResultsError(f"{name}: member {i.filename!r} has an unsafe path")
            members[p] = i
        run_jsons = [p for p in members if p.name == "run.json" and len(p.parts) <= 2]
        if len(run_jsons) != 1:
            raise ResultsError(
                f"{name}: expected exactly one run.json (at the top or in one folder), found {len(run_jsons)}"
            )
        base = run_jsons[0].parent
        src = f"{name}:{run_jsons[0]}"
        run = parse_json_bytes(zf.read(members[run_jsons[0]]), src)
        files, missing = {}, []
        for rel in _raw_files(run):
            p = _check_raw_path(rel, src)
            member = base / p
            if member not in members:
                missing.append(rel)
                continue
            blob = zf.read(members[member])
            try:
                pq.read_schema(io.BytesIO(blob))
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise ResultsError(f"{name}:{member}: not a readable Parquet file ({exc})") from None
            files[str(p)] = blob
    notes = [f"missing raw file(s): {', '.join(missing)}"] if missing else []
    return _Unpacked(run, files, notes)
