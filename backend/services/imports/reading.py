"""Reading an uploaded file row by row: JSON lines or CSV, optionally gzip-compressed.

Nothing is read whole into memory. Lines longer than MAX_LINE_BYTES are rejected as rows without
being buffered, and a gzip file may not expand beyond `max_bytes * MAX_EXPANSION` (a zip bomb is
refused, docs/design/reliability.md C10). Row numbers are line numbers in the (decompressed) file; for CSV the
header is line 1, as in a spreadsheet.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from backend.domain.errors import InvalidInput, PayloadTooLarge

MAX_LINE_BYTES = 2 * 1024 * 1024
MAX_EXPANSION = 10
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class RawRow:
    number: int
    data: dict[str, Any] | None
    error: str | None = None


class _CappedReader(io.RawIOBase):
    """Counts decompressed bytes and stops a decompression bomb early."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self._seen += len(data)
        if self._seen > self._limit:
            raise PayloadTooLarge(
                f"the file expands to more than {self._limit // (1024 * 1024)} MiB when decompressed",
                code="decompressed_too_large",
            )
        buffer[: len(data)] = data
        return len(data)


def open_rows_stream(raw: IO[bytes], *, max_bytes: int) -> IO[bytes]:
    raw.seek(0)
    head = raw.read(2)
    raw.seek(0)
    if head == GZIP_MAGIC:
        inner = gzip.GzipFile(fileobj=raw, mode="rb")
        capped = _CappedReader(inner, max_bytes * MAX_EXPANSION)  # type: ignore[arg-type]
        return io.BufferedReader(capped, buffer_size=1 << 16)
    return raw


def iter_jsonl(stream: IO[bytes]) -> Iterator[RawRow]:
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            _skip_rest_of_line(stream)
            yield RawRow(number, None, f"line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
            continue
        if not line.strip():
            continue
        yield _parse_json_line(number, line)


def _skip_rest_of_line(stream: IO[bytes]) -> None:
    while True:
        chunk = stream.readline(MAX_LINE_BYTES)
        if not chunk or chunk.endswith(b"\n"):
            return


def _parse_json_line(number: int, line: bytes) -> RawRow:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return RawRow(number, None, "the line is not valid UTF-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return RawRow(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(value, dict):
        return RawRow(number, None, "each line must be a JSON object")
    return RawRow(number, value)


def iter_csv(stream: IO[bytes]) -> Iterator[RawRow]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip() for h in header]
        if len(set(names)) != len(names):
            raise InvalidInput("the CSV header names a column twice", code="bad_csv")
        while True:
            start = reader.line_num + 1
            record = next(reader, None)
            if record is None:
                return
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(names):
                yield RawRow(start, None, f"expected {len(names)} columns, found {len(record)}")
                continue
            yield RawRow(start, dict(zip(names, record, strict=True)))
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the CSV file is not UTF-8 (near line {reader.line_num + 1})", code="bad_csv"
        ) from exc
    except csv.Error as exc:
        raise InvalidInput(
            f"the CSV file is malformed near line {reader.line_num}: {exc}", code="bad_csv"
        ) from exc
    finally:
        text.detach()


def iter_rows(raw: IO[bytes], *, file_format: str, max_bytes: int) -> Iterator[RawRow]:
    stream = open_rows_stream(raw, max_bytes=max_bytes)
    if file_format == "csv":
        yield from iter_csv(stream)
    else:
        yield from iter_jsonl(stream)


def guess_format(filename: str) -> str:
    name = filename.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return "csv" if name.endswith(".csv") else "jsonl"
