"""The official NAS-Bench-101 file (``nasbench_only108.tfrecord``), read and written without
TensorFlow or protobuf.

The file is a TFRecord whose every record is the JSON list ``[module_hash, epochs,
raw_adjacency, raw_operations, raw_metrics]`` of one training run, ``raw_metrics`` a base64
``nasbench.ModelMetrics`` protobuf (``model_metrics.proto``). This module holds:

* TFRecord framing with CRC-32C checks: :func:`read_tfrecords`, :func:`write_tfrecords`,
  :func:`crc32c`, :func:`masked_crc32c`; a bad or truncated record raises
  :class:`CorruptRecordError`, naming the file and the record;
* the ``ModelMetrics`` protobuf decoded (and encoded) by hand: :class:`ModelMetrics`,
  :class:`EvaluationData`;
* the rows as ``api.py`` decodes them: :class:`NASBenchRecord`,
  :func:`read_nasbench_records`, :func:`write_nasbench_records`;
* :func:`read_nasbench101`: every module's :class:`~.nasbench101_cells.CellSpec` and mean
  final validation accuracy, filtered at a threshold (the paper keeps 295,889 of the 423,624
  cells at 90%).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from .nasbench101_cells import CellSpec

__all__ = [
    "crc32c",
    "masked_crc32c",
    "CorruptRecordError",
    "read_tfrecords",
    "write_tfrecords",
    "EvaluationData",
    "ModelMetrics",
    "NASBenchRecord",
    "read_nasbench_records",
    "write_nasbench_records",
    "read_nasbench101",
]

# -- TFRecord framing -------------------------------------------------------------------------
def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def _crc32c_python(data: bytes, crc: int = 0) -> int:
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _fast_crc32c():
    """A C implementation of CRC-32C when one happens to be installed (optional)."""
    try:  # pragma: no cover - depends on the environment
        import google_crc32c

        if getattr(google_crc32c, "implementation", "c") == "c":
            return lambda data: google_crc32c.value(bytes(data))
    except ImportError:
        pass
    try:  # pragma: no cover - depends on the environment
        import crc32c as _crc32c_module

        return lambda data: _crc32c_module.crc32c(data)
    except ImportError:
        pass
    return None


_CRC32C_FAST = _fast_crc32c()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven in pure Python
    (a C implementation is used instead if ``google-crc32c`` or ``crc32c`` is installed)."""
    if _CRC32C_FAST is not None:
        return _CRC32C_FAST(data)
    return _crc32c_python(data)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add 0xa282ead8."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class CorruptRecordError(ValueError):
    """A TFRecord (or its payload) that cannot be read: names the file and the record."""


def read_tfrecords(path: str | os.PathLike, *, verify_checksums: bool = True) -> Iterator[bytes]:
    """The payloads of a TFRecord file: each record is a little-endian uint64 length, the
    masked CRC-32C of those 8 bytes, the data and the masked CRC-32C of the data. With
    ``verify_checksums`` both CRCs are checked (in pure Python: the slow part of reading the
    official file); a bad or truncated record raises :class:`CorruptRecordError`."""
    path = Path(path)
    with open(path, "rb") as f:
        index, offset = 0, 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise CorruptRecordError(
                    f"{path}: record {index} (byte offset {offset}) is truncated: "
                    f"{len(header)} of the 12 header bytes"
                )
            length_bytes = header[:8]
            (length,) = struct.unpack("<Q", length_bytes)
            (length_crc,) = struct.unpack("<I", header[8:])
            if verify_checksums and masked_crc32c(length_bytes) != length_crc:
                raise CorruptRecordError(
                    f"{path}: record {index} (byte offset {offset}) is corrupt: the CRC-32C of its length "
                    f"field does not match (stored {length_crc:#010x}, computed {masked_crc32c(length_bytes):#010x})"
                )
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise CorruptRecordError(
                    f"{path}: record {index} (byte offset {offset}) is truncated: expected {length} data bytes "
                    f"and a 4-byte CRC, the file ends after {len(data) + len(footer)}"
                )
            if verify_checksums:
                (data_crc,) = struct.unpack("<I", footer)
                computed = masked_crc32c(data)
                if computed != data_crc:
                    raise CorruptRecordError(
                        f"{path}: record {index} (byte offset {offset}) is corrupt: the CRC-32C of its "
                        f"{length} data bytes does not match (stored {data_crc:#010x}, computed {computed:#010x})"
                    )
            yield data
            index += 1
            offset += 16 + length


def _frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def write_tfrecords(path: str | os.PathLike, payloads: Iterable[bytes]) -> int:
    """Write ``payloads`` as a TFRecord file (the inverse of :func:`read_tfrecords`); returns
    the number of records."""
    count = 0
    with open(path, "wb") as f:
        for data in payloads:
            f.write(_frame(bytes(data)))
            count += 1
    return count


# -- protobuf wire format (model_metrics.proto) -------------------------------------------------
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated protobuf: a varint runs past the end of the message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("malformed protobuf: a varint is longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """``(field_number, wire_type, value)`` for every field of a message: ints for varints,
    raw 8/4 bytes for fixed64/fixed32, a bytes slice for length-delimited fields."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("malformed protobuf: field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _FIXED64:
            if pos + 8 > end:
                raise ValueError(f"truncated protobuf: field {number} needs 8 bytes")
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == _LENGTH_DELIMITED:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise ValueError(f"truncated protobuf: field {number} needs {size} bytes, {end - pos} left")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == _FIXED32:
            if pos + 4 > end:
                raise ValueError(f"truncated protobuf: field {number} needs 4 bytes")
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        yield number, wire, value


def _expect(number: int, wire: int, expected: int, message: str) -> None:
    if wire != expected:
        raise ValueError(f"{message} field {number} has wire type {wire}, expected {expected}")


def _double(number: int, wire: int, value, message: str) -> float:
    _expect(number, wire, _FIXED64, message)
    return struct.unpack("<d", value)[0]


def _write_varint(out: bytearray, value: int) -> None:
    if value < 0:
        value += 1 << 64  # two's complement, 10 bytes, as protobuf encodes negative int32/int64
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _write_key(out: bytearray, number: int, wire: int) -> None:
    _write_varint(out, (number << 3) | wire)


def _write_double(out: bytearray, number: int, value: float | None) -> None:
    if value is not None:
        _write_key(out, number, _FIXED64)
        out += struct.pack("<d", float(value))


def _write_bytes(out: bytearray, number: int, value: bytes) -> None:
    _write_key(out, number, _LENGTH_DELIMITED)
    _write_varint(out, len(value))
    out += value


@dataclass
class EvaluationData:
    """``nasbench.EvaluationData`` (model_metrics.proto): one evaluation during training.
    ``None`` is an unset optional field."""

    current_epoch: float | None = None  # 1: double
    training_time: float | None = None  # 2: double
    train_accuracy: float | None = None  # 3: double
    validation_accuracy: float | None = None  # 4: double
    test_accuracy: float | None = None  # 5: double
    checkpoint_path: str | None = None  # 6: string

    _DOUBLES = {1: "current_epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy", 5: "test_accuracy"}

    @classmethod
    def from_bytes(cls, buf: bytes) -> "EvaluationData":
        values: dict = {}
        for number, wire, value in _fields(bytes(buf)):
            if number in cls._DOUBLES:
                values[cls._DOUBLES[number]] = _double(number, wire, value, "EvaluationData")
            elif number == 6:
                _expect(number, wire, _LENGTH_DELIMITED, "EvaluationData")
                values["checkpoint_path"] = bytes(value).decode("utf-8")
            # unknown fields are skipped, as protobuf does
        return cls(**values)

    def to_bytes(self) -> bytes:
        out = bytearray()
        for number, name in self._DOUBLES.items():
            _write_double(out, number, getattr(self, name))
        if self.checkpoint_path is not None:
            _write_bytes(out, 6, self.checkpoint_path.encode("utf-8"))
        return bytes(out)


@dataclass
class ModelMetrics:
    """``nasbench.ModelMetrics`` (model_metrics.proto): every evaluation of one training run
    (``evaluation_data[0]`` at initialisation, ``[1]`` halfway, ``[-1]`` at the end), the
    trainable parameter count and the total time."""

    evaluation_data: list[EvaluationData] = field(default_factory=list)  # 1: repeated message
    trainable_parameters: int | None = None  # 2: int32
    total_time: float | None = None  # 3: double

    @classmethod
    def from_bytes(cls, buf: bytes) -> "ModelMetrics":
        metrics = cls()
        for number, wire, value in _fields(bytes(buf)):
            if number == 1:
                _expect(number, wire, _LENGTH_DELIMITED, "ModelMetrics")
                metrics.evaluation_data.append(EvaluationData.from_bytes(value))
            elif number == 2:
                _expect(number, wire, _VARINT, "ModelMetrics")
                value &= 0xFFFFFFFF  # int32: the low 32 bits, signed
                metrics.trainable_parameters = value - (1 << 32) if value >= 1 << 31 else value
            elif number == 3:
                metrics.total_time = _double(number, wire, value, "ModelMetrics")
        return metrics

    def to_bytes(self) -> bytes:
        out = bytearray()
        for evaluation in self.evaluation_data:
            _write_bytes(out, 1, evaluation.to_bytes())
        if self.trainable_parameters is not None:
            _write_key(out, 2, _VARINT)
            _write_varint(out, int(self.trainable_parameters))
        _write_double(out, 3, self.total_time)
        return bytes(out)

    @property
    def final_validation_accuracy(self) -> float | None:
        return self.evaluation_data[-1].validation_accuracy if self.evaluation_data else None


# -- the NAS-Bench-101 records (api.py) -----------------------------------------------------
@dataclass
class NASBenchRecord:
    """One training run of one cell, as a record of the official tfrecord holds it: the JSON
    list ``[module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]``."""

    module_hash: str
    epochs: int
    raw_adjacency: str
    raw_operations: str
    metrics: ModelMetrics

    @property
    def spec(self) -> CellSpec:
        return CellSpec.from_raw(self.raw_adjacency, self.raw_operations)

    @property
    def final_validation_accuracy(self) -> float | None:
        return self.metrics.final_validation_accuracy

    @classmethod
    def from_spec(
        cls, spec: CellSpec, metrics: ModelMetrics, epochs: int = 108, module_hash: str | None = None
    ) -> "NASBenchRecord":
        adjacency, operations = spec.to_raw()
        return cls(module_hash or spec.hash(), int(epochs), adjacency, operations, metrics)

    @classmethod
    def from_json(cls, payload: bytes) -> "NASBenchRecord":
        row = json.loads(payload.decode("utf-8"))
        if not isinstance(row, list) or len(row) != 5:
            raise ValueError("expected a JSON list [module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]")
        module_hash, epochs, adjacency, operations, raw_metrics = row
        metrics = ModelMetrics.from_bytes(base64.b64decode(raw_metrics, validate=True))
        return cls(str(module_hash), int(epochs), str(adjacency), str(operations), metrics)

    def to_json(self) -> bytes:
        raw_metrics = base64.b64encode(self.metrics.to_bytes()).decode("ascii")
        row = [self.module_hash, int(self.epochs), self.raw_adjacency, self.raw_operations, raw_metrics]
        return json.dumps(row).encode("utf-8")


def read_nasbench_records(path: str | os.PathLike, *, verify_checksums: bool = True) -> Iterator[NASBenchRecord]:
    """Every record of a NAS-Bench-101 tfrecord (``nasbench_only108.tfrecord`` or
    ``nasbench_full.tfrecord``), decoded as ``api.py`` decodes it but without TensorFlow."""
    for index, payload in enumerate(read_tfrecords(path, verify_checksums=verify_checksums)):
        try:
            yield NASBenchRecord.from_json(payload)
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise CorruptRecordError(f"{path}: record {index} is not a NAS-Bench-101 row: {error}") from error


def write_nasbench_records(path: str | os.PathLike, rows: Iterable[NASBenchRecord | Sequence]) -> int:
    """Write rows in the official tfrecord format; each row a :class:`NASBenchRecord` or a
    ``(module_hash, epochs, raw_adjacency, raw_operations, metrics)`` sequence (``metrics`` a
    :class:`ModelMetrics` or its serialized bytes). Returns the number of records."""

    def payloads():
        for row in rows:
            if not isinstance(row, NASBenchRecord):
                module_hash, epochs, adjacency, operations, metrics = row
                if isinstance(metrics, (bytes, bytearray)):
                    metrics = ModelMetrics.from_bytes(metrics)
                row = NASBenchRecord(module_hash, int(epochs), adjacency, operations, metrics)
            yield row.to_json()

    return write_tfrecords(path, payloads())


def read_nasbench101(
    path: str | os.PathLike,
    min_validation_accuracy: float | None = 0.90,
    epochs: int = 108,
    *,
    verify_checksums: bool = True,
    verify_hashes: bool = False,
    progress: bool = False,
) -> Iterator[tuple[CellSpec, float, str]]:
    """``(spec, mean_validation_accuracy, module_hash)`` for every module of the file whose
    runs at ``epochs`` epochs have a mean final validation accuracy ``>= min_validation_accuracy``
    (``None`` keeps all), in the order the modules first appear. The paper keeps 295,889 of the
    423,624 modules at 0.90. The whole file is read before the first module is yielded (the
    repeats of a module need not be adjacent). With ``verify_hashes`` every module's hash is
    recomputed from its cell and compared with the file's."""
    modules: dict[str, list] = {}  # hash -> [raw_adjacency, raw_operations, sum, count]
    records = read_nasbench_records(path, verify_checksums=verify_checksums)
    for index, record in enumerate(tqdm(records, desc="reading NAS-Bench-101", unit=" records", disable=not progress)):
        if record.epochs != epochs:
            continue
        accuracy = record.final_validation_accuracy
        if accuracy is None:
            raise CorruptRecordError(f"{path}: record {index} (module {record.module_hash}) has no final validation accuracy")
        entry = modules.get(record.module_hash)
        if entry is None:
            modules[record.module_hash] = [record.raw_adjacency, record.raw_operations, accuracy, 1]
        else:
            entry[2] += accuracy
            entry[3] += 1
    for module_hash, (adjacency, operations, total, count) in modules.items():
        mean = total / count
        if min_validation_accuracy is not None and mean < min_validation_accuracy:
            continue
        try:
            spec = CellSpec.from_raw(adjacency, operations)
        except ValueError as error:
            raise CorruptRecordError(f"{path}: module {module_hash} has an invalid cell: {error}") from error
        if verify_hashes and spec.hash() != module_hash:
            raise CorruptRecordError(f"{path}: module {module_hash} hashes to {spec.hash()} from its cell")
        yield spec, mean, module_hash
