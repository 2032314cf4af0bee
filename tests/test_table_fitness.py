"""FitnessTable / TableEvaluator on a synthetic bit-string space and table (CSV and parquet)."""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import pytest

from gptnas_hf.search.table_fitness import (
    ArchitectureNotInTableError,
    FitnessTable,
    TableError,
    TableEvaluator,
)
from gptnas_hf.search_space_protocol import InvalidArchitectureError, SearchSpace

NBITS = 8
WEIGHTS = [2.0 ** -i for i in range(NBITS)]  # distinct sums: every architecture its own value


class Bits(SearchSpace):
    """``n``-bit strings; ``load`` ignores ``_`` and spaces, so "0110_1001" == "01101001"."""

    name = "bits"

    def __init__(self, n: int = NBITS):
        self.n = n

    def load(self, data):
        if isinstance(data, (list, tuple)):
            data = "".join(str(b) for b in data)
        if not isinstance(data, str):
            raise InvalidArchitectureError(f"expected a bit string, got {type(data).__name__}")
        s = data.replace("_", "").replace(" ", "")
        if len(s) != self.n or set(s) - {"0", "1"}:
            raise InvalidArchitectureError(f"expected {self.n} bits of 0/1, got {data!r}")
        return s

    def dump(self, arch):
        return self.load(arch)

    def hash(self, arch):
        return hashlib.sha1(self.load(arch).encode()).hexdigest()

    def sample(self, rng):
        return "".join(rng.choice("01") for _ in range(self.n))

    def build_network(self, arch, in_channels=3, num_classes=10):
        raise NotImplementedError

    def tokens(self, arch):
        return list(self.load(arch))

    def mutate(self, arch, rng):
        i = rng.randrange(self.n)
        s = self.load(arch)
        return s[:i] + ("1" if s[i] == "0" else "0") + s[i + 1:], f"flip{i}"

    def config(self):
        return {"n": self.n}


def accuracy(bits: str) -> float:
    """A known function of the bits, in percent (50..~100)."""
    return 50.0 + 25.0 * sum(w for w, b in zip(WEIGHTS, bits) if b == "1")


def all_archs(n: int = NBITS) -> list[str]:
    return [format(i, f"0{n}b") for i in range(2 ** n)]


def write_csv(path: Path, rows, header=("arch", "test_accuracy")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_parquet(path: Path, archs, values) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"arch": archs, "test_accuracy": values}), path)
    return path


MISSING = {"11111111", "00000000"}


@pytest.fixture
def rows():
    return [(a, accuracy(a)) for a in all_archs() if a not in MISSING]


@pytest.fixture
def csv_path(tmp_path, rows):
    return write_csv(tmp_path / "bench.csv", rows)


@pytest.fixture
def parquet_path(tmp_path, rows):
    return write_parquet(tmp_path / "bench.parquet", [a for a, _ in rows], [v for _, v in rows])


# -- loading and lookup ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_lookup_by_hash_and_scale(kind, csv_path, parquet_path):
    space = Bits()
    table = FitnessTable.load(csv_path if kind == "csv" else parquet_path, space=space)
    assert len(table) == 2 ** NBITS - len(MISSING)
    assert table.scale == 0.01  # percent
    arch = "01101001"
    assert table.lookup(arch) == accuracy(arch)
    assert table.lookup("0110_1001") == accuracy(arch)  # another spelling, the same hash
    assert table.lookup(list("01101001")) == accuracy(arch)
    assert math.isclose(table.fitness(arch), accuracy(arch) / 100)
    assert table.key(arch) == space.hash(arch)
    assert arch in table and "11111111" not in table and "junk" not in table
    key, value = table.best()
    assert value == accuracy("11111110") and table.cell(key) == "11111110"
    d = table.describe()
    assert d["rows"] == d["architectures"] == len(table) and d["columns"] == ["arch", "test_accuracy"]
    assert d["max"] == value and d["min"] == accuracy("00000001") and d["min"] < d["mean"] < d["max"]
    assert d["path"] == str(table.path)


def test_without_space_keys_by_stripped_string(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("  a  ", "0.5"), ("b", "0.25")])
    table = FitnessTable.load(path)
    assert table.lookup("a") == 0.5 and table.lookup(" a") == 0.5
    assert table.scale == 1.0 and table.fitness("b") == 0.25  # fractions stay fractions
    assert table.best() == ("a", 0.5)


def test_csv_and_parquet_agree_and_fingerprints(tmp_path, csv_path, parquet_path):
    space = Bits()
    a = FitnessTable.load(csv_path, space=space)
    b = FitnessTable.load(parquet_path, space=space)
    assert dict(a.items()) == dict(b.items())
    fp = a.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert FitnessTable.load(csv_path, space=space).fingerprint() == fp  # stable
    assert FitnessTable.load(csv_path).fingerprint() == fp  # the bytes and columns, not the space
    assert b.fingerprint() != fp
    other = write_csv(tmp_path / "other.csv", [("01101001", "70")])
    assert FitnessTable.load(other).fingerprint() != fp
    two = write_csv(tmp_path / "two.csv", [("01101001", "70", "71")], header=("arch", "acc", "acc2"))
    fp1 = FitnessTable.load(two, metric_column="acc").fingerprint()
    assert fp1 != FitnessTable.load(two, metric_column="acc2").fingerprint()  # the columns count


def test_duplicate_rows_with_equal_values_are_fine(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("01101001", "70"), ("0110_1001", "70.0"), ("00000001", "60")])
    table = FitnessTable.load(path, space=Bits())
    assert len(table) == 2 and table.rows == 3


def test_explicit_scale(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("a", "500"), ("b", "250")])
    with pytest.raises(TableError, match=r"row 1 .*500.*outside \[0, 1\]"):
        FitnessTable.load(path)
    table = FitnessTable.load(path, scale=0.001)
    assert table.fitness("a") == 0.5
    with pytest.raises(ValueError, match="scale"):
        FitnessTable.load(path, scale=0)


def test_real_nas_bench_201_table_without_space():
    path = Path("/work/shared/data/nas-bench-201/cifar10.csv")
    if not path.exists():
        pytest.skip("no NAS-Bench-201 table here")
    table = FitnessTable.load(path)
    assert len(table) == 15625 and table.scale == 0.01
    best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert table.best()[0] == best and round(table.best()[1], 2) == 94.37
    assert round(table.describe()["mean"], 2) == 87.06


# -- errors --------------------------------------------------------------------------------
def test_unsupported_suffix(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text("{}")
    with pytest.raises(TableError) as e:
        FitnessTable.load(path)
    assert ".csv" in str(e.value) and ".parquet" in str(e.value) and "bench.json" in str(e.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(TableError, match=r"nope\.csv: no such file"):
        FitnessTable.load(tmp_path / "nope.csv")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(TableError, match=r"folder\.csv: cannot read"):
        FitnessTable.load(folder)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"this is not parquet at all")
    with pytest.raises(TableError, match=r"junk\.parquet: cannot read the file as parquet"):
        FitnessTable.load(junk)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"arch,test_accuracy\n\xe9\xff,1\n")
    with pytest.raises(TableError, match=r"latin\.csv: cannot read the file as UTF-8"):
        FitnessTable.load(latin)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_missing_column_names_the_columns(kind, csv_path, parquet_path):
    path = csv_path if kind == "csv" else parquet_path
    with pytest.raises(TableError) as e:
        FitnessTable.load(path, metric_column="valid_accuracy")
    msg = str(e.value)
    assert path.name in msg and "'valid_accuracy'" in msg and "'arch'" in msg and "'test_accuracy'" in msg
    with pytest.raises(TableError, match="architecture column 'cell'"):
        FitnessTable.load(path, arch_column="cell")


@pytest.mark.parametrize("bad", ["nan", "abc", "", "inf", "-inf"])
def test_metric_not_a_finite_number_names_the_row(tmp_path, bad):
    path = write_csv(tmp_path / "t.csv", [("00000001", "60"), ("00000010", bad)])
    with pytest.raises(TableError) as e:
        FitnessTable.load(path, space=Bits())
    msg = str(e.value)
    assert "t.csv" in msg and "row 2 (line 3)" in msg and "not a finite number" in msg


def test_parquet_metric_not_finite_names_the_row(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", ["00000001", "00000010", "00000011"], [60.0, None, 70.0])
    with pytest.raises(TableError, match=r"t\.parquet: row 2: 'test_accuracy' is None"):
        FitnessTable.load(path)
    path = write_parquet(tmp_path / "u.parquet", ["00000001", "00000010"], [60.0, float("nan")])
    with pytest.raises(TableError, match=r"u\.parquet: row 2: .*not a finite number"):
        FitnessTable.load(path)


def test_unreadable_architecture_names_row_and_space_message(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("00000001", "60"), ("00000010", "61"), ("0102", "62")])
    with pytest.raises(TableError) as e:
        FitnessTable.load(path, space=Bits())
    msg = str(e.value)
    assert "t.csv" in msg and "row 3 (line 4)" in msg and "'bits' space" in msg
    assert "expected 8 bits of 0/1, got '0102'" in msg  # the space's own message
    assert FitnessTable.load(path).lookup("0102") == 62.0  # without a space any string goes
    empty_cell = write_csv(tmp_path / "e.csv", [("00000001", "60"), ("", "61")])
    with pytest.raises(TableError, match=r"row 2 .*'arch' cell is empty"):
        FitnessTable.load(empty_cell)


def test_same_architecture_with_different_values(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("01101001", "70"), ("00000001", "60"), ("0110_1001", "71")])
    with pytest.raises(TableError) as e:
        FitnessTable.load(path, space=Bits())
    msg = str(e.value)
    assert "t.csv" in msg and "row 3" in msg and "row 1" in msg and "01101001" in msg and "71" in msg
    assert len(FitnessTable.load(path)) == 3  # without a space they are different strings


def test_empty_tables(tmp_path):
    header_only = write_csv(tmp_path / "h.csv", [])
    with pytest.raises(TableError, match=r"h\.csv: the table is empty"):
        FitnessTable.load(header_only)
    nothing = tmp_path / "n.csv"
    nothing.write_text("")
    with pytest.raises(TableError, match=r"n\.csv: the table is empty"):
        FitnessTable.load(nothing)
    pq_empty = write_parquet(tmp_path / "p.parquet", [], [])
    with pytest.raises(TableError, match=r"p\.parquet: the table is empty"):
        FitnessTable.load(pq_empty)


def test_not_in_table_error(csv_path):
    table = FitnessTable.load(csv_path, space=Bits())
    with pytest.raises(ArchitectureNotInTableError) as e:
        table.lookup("1111_1111")
    err = e.value
    assert isinstance(err, KeyError)
    assert str(err) == f"architecture 11111111 is not in the table {csv_path}"
    assert err.arch == "11111111" and err.path == str(csv_path) and err.key == Bits().hash("11111111")
    with pytest.raises(InvalidArchitectureError):  # not an architecture at all: the space says so
        table.lookup("2")


# -- the evaluator -----------------------------------------------------------------------------
def test_evaluator_record_and_query_counting(csv_path):
    space = Bits()
    table = FitnessTable.load(csv_path, space=space)
    ev = TableEvaluator(table, space, parameters=lambda arch: 1000 + int(arch, 2))
    rec = ev.evaluate("01101001")
    assert rec["fitness"] == pytest.approx(accuracy("01101001") / 100) and rec["metric"] == accuracy("01101001")
    assert rec["status"] == "ok" and rec["train_scope"] == "table" and rec["reason"] == ""
    assert rec["parameters"] == 1000 + 0b01101001 and rec["top5"] == 0.0
    assert {"trainable_parameters", "images_per_second", "threads", "seconds"} <= set(rec)
    assert 0 <= rec["seconds"] < 1
    assert ev.queries == 1 and ev.seen("0110_1001") and not ev.seen("01101000")
    ev.evaluate("0110_1001")  # the same architecture, written differently: not a new query
    ev.evaluate("01101001")
    assert ev.queries == 1
    ev.evaluate("01101000")
    assert ev.queries == 2
    with pytest.raises(ArchitectureNotInTableError):
        ev.evaluate("11111111")
    assert ev.queries == 2 and not ev.seen("11111111")  # a miss is not a query
    assert TableEvaluator(table).evaluate("01101001")["parameters"] == 0  # no callable: 0

    state = ev.state_dict()
    assert state["table"] == table.fingerprint() and len(state["queried"]) == 2
    again = TableEvaluator(table, space)
    again.load_state_dict(state)
    assert again.queries == 2 and again.seen("01101001") and again.seen("01101000")
    again.evaluate("01101001")
    assert again.queries == 2
    again.evaluate("00000001")
    assert again.queries == 3 and ev.queries == 2
    assert ev.config()["fingerprint"] == table.fingerprint() and ev.config()["kind"] == "table"


def test_evaluator_state_of_another_table_and_bad_arguments(tmp_path, csv_path, parquet_path):
    space = Bits()
    ev = TableEvaluator(FitnessTable.load(csv_path, space=space), space)
    other = TableEvaluator(FitnessTable.load(parquet_path, space=space), space)
    with pytest.raises(ValueError, match="the state is for table"):
        ev.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="queried"):
        ev.load_state_dict({"table": ev.table.fingerprint(), "queried": "abc"})
    with pytest.raises(ValueError, match="loaded without a search space"):
        TableEvaluator(FitnessTable.load(csv_path), space)
    with pytest.raises(TypeError):
        TableEvaluator("not a table", space)
    with pytest.raises(TypeError):
        TableEvaluator(ev.table, space, parameters=3)


def test_evaluator_without_space(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("a", "0.5"), ("b", "0.25")])
    ev = TableEvaluator(FitnessTable.load(path))
    assert ev.evaluate(" a ")["fitness"] == 0.5
    ev.evaluate("a")
    assert ev.queries == 1 and ev.seen("a")
