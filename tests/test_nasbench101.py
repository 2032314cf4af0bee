import random
import struct

import pytest
import torch

from gptnas_hf.corpora.common import ARCHITECTURE_FEATURES
from gptnas_hf.corpora.nasbench101 import nasbench101_corpus
from gptnas_hf.corpora.nasbench101_cells import (
    AVAILABLE_OPS,
    CONV1X1,
    CONV3X3,
    INPUT,
    MAXPOOL3X3,
    OUTPUT,
    CellSpec,
    hash_module,
    is_valid_cell,
    sample_cells,
)
from gptnas_hf.corpora.nasbench101_network import NASBench101Network, compute_vertex_channels, trace_cell
from gptnas_hf.corpora.nasbench101_tfrecord import (
    CorruptRecordError,
    EvaluationData,
    ModelMetrics,
    NASBenchRecord,
    crc32c,
    masked_crc32c,
    read_nasbench101,
    read_nasbench_records,
    read_tfrecords,
    write_nasbench_records,
    write_tfrecords,
)
from gptnas_hf.encoding import BLOCK_LABELS, OTHER_LABEL, LayerRecord, trace


def matrix_from_inputs(num_vertices, inputs):
    """NNI's arch form: ``inputs[v]`` lists the predecessors of vertex ``v``."""
    matrix = [[0] * num_vertices for _ in range(num_vertices)]
    for v, sources in inputs.items():
        for s in sources:
            matrix[s][v] = 1
    return matrix


# The NNI NAS-benchmark example (docs/en_US/NAS/BenchmarksExample.ipynb), queried from the
# official data: module hash 00005c142e6f48ac74fdcf73e3439874, 8.55553 M parameters, final
# validation accuracies 92.418%, 92.458%, 93.049% over the three 108-epoch runs.
NNI_CELL = CellSpec(
    matrix_from_inputs(7, {1: [0], 2: [1], 3: [2], 4: [0], 5: [0, 3, 4], 6: [2, 5]}),
    [INPUT, CONV3X3, MAXPOOL3X3, CONV3X3, CONV3X3, CONV1X1, OUTPUT],
)
NNI_HASH = "00005c142e6f48ac74fdcf73e3439874"

# The NAS-Bench-101 colab's Inception-like cell: trainable_parameters 2694282 in the dataset.
INCEPTION_CELL = CellSpec(
    [
        [0, 1, 1, 1, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    [INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT],
)


def count_parameters(spec):
    with torch.device("meta"):
        network = NASBench101Network(spec)
    return sum(p.numel() for p in network.parameters())


# -- hashing ------------------------------------------------------------------------------------
def test_hash_matches_the_official_dataset():
    assert NNI_CELL.hash() == NNI_HASH
    assert NNI_CELL.num_vertices == 7 and NNI_CELL.num_edges == 9


def permute(matrix, ops, perm):
    """Vertex ``v`` of the cell becomes vertex ``perm[v]``."""
    n = len(matrix)
    new = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            new[perm[i]][perm[j]] = matrix[i][j]
    new_ops = [None] * n
    for v in range(n):
        new_ops[perm[v]] = ops[v]
    return new, new_ops


def test_isomorphic_cells_hash_equal():
    # vertex 4 of the NNI cell (fed by the input only) can move to the front
    perm = [0, 2, 3, 4, 1, 5, 6]
    matrix, ops = permute(NNI_CELL.matrix, NNI_CELL.ops, perm)
    other = CellSpec(matrix, ops)
    assert other != NNI_CELL  # a different labelled matrix ...
    assert other.hash() == NNI_HASH  # ... of the same cell

    rng = random.Random(0)
    checked = 0
    for spec in sample_cells(40, seed=7):
        n = spec.num_vertices
        for _ in range(30):
            interior = list(range(1, n - 1))
            rng.shuffle(interior)
            perm = [0] + interior + [n - 1]
            matrix, ops = permute(spec.matrix, spec.ops, perm)
            if all(matrix[i][j] == 0 for i in range(n) for j in range(i + 1)):
                assert CellSpec(matrix, ops).hash() == spec.hash()
                checked += 1
    assert checked > 40


def test_hash_module_on_general_graphs():
    # like the reference's random isomorphism test: any directed labelled graph
    rng = random.Random(1)
    for _ in range(20):
        n = rng.randint(3, 9)
        matrix = [[rng.randint(0, 1) for _ in range(n)] for _ in range(n)]
        labels = [rng.randint(0, 4) for _ in range(n)]
        perm = list(range(n))
        rng.shuffle(perm)
        pmatrix, plabels = permute(matrix, labels, perm)
        assert hash_module(matrix, labels) == hash_module(pmatrix, plabels)
    # non-isomorphic cells that a weaker hash would confuse (graph_util_test.py)
    chain = [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    assert hash_module(chain, [-1, 1, 0, 0, -2]) != hash_module(chain, [-1, 0, 0, 1, -2])
    skip = [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert hash_module(skip, [-1, 1, 0, -2]) != hash_module(skip, [-1, 0, 1, -2])
    # the op labels matter
    assert CellSpec(NNI_CELL.matrix, [INPUT] + [CONV1X1] * 5 + [OUTPUT]).hash() != NNI_HASH


def test_pruning_drops_vertices_off_the_input_output_path():
    matrix = [
        [0, 1, 0, 1, 0],  # 0 -> 1, 0 -> 3
        [0, 0, 0, 0, 1],  # 1 -> out
        [0, 0, 0, 0, 1],  # 2 -> out, but nothing feeds 2
        [0, 0, 0, 0, 0],  # 3 feeds nothing
        [0, 0, 0, 0, 0],
    ]
    spec = CellSpec(matrix, [INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT])
    assert spec.was_pruned
    assert spec.matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0))
    assert spec.ops == (INPUT, CONV3X3, OUTPUT)
    assert spec.original_ops == (INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT)
    pruned = CellSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT])
    assert spec == pruned and spec.hash() == pruned.hash()
    # pruning happens before the size limits: 10 given edges, 2 of them dangling
    big = [[0] * 7 for _ in range(7)]
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (0, 6), (1, 6), (2, 6), (0, 5), (1, 5)]:
        big[i][j] = 1
    assert CellSpec(big, [INPUT] + [CONV3X3] * 5 + [OUTPUT]).num_edges == 8


def test_raw_round_trip():
    adjacency, operations = NNI_CELL.to_raw()
    assert len(adjacency) == 49 and operations.startswith("input,") and operations.endswith(",output")
    assert CellSpec.from_raw(adjacency, operations) == NNI_CELL


@pytest.mark.parametrize(
    "matrix, ops, message",
    [
        ([[0, 1], [0, 0], [0, 0]], [INPUT, OUTPUT], "must be square"),
        ([[0, 1], [0, 0]], [INPUT, CONV3X3, OUTPUT], "2 vertices but 3 ops"),
        ([[0, 1, 0], [0, 0, 1], [1, 0, 0]], [INPUT, CONV3X3, OUTPUT], r"upper-triangular .* entry \[2\]\[0\]"),
        ([[0, 2], [0, 0]], [INPUT, OUTPUT], "0 or 1, got 2"),
        ([[0, 1], [0, 0]], [CONV3X3, OUTPUT], "first op must be 'input'"),
        ([[0, 1], [0, 0]], [INPUT, CONV3X3], "last op must be 'output'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT], "op 1 is 'conv5x5'"),
        ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT], "no path from the input"),
        ([[0]], [INPUT], "at least the input and output"),
    ],
)
def test_invalid_cells_are_clear_errors(matrix, ops, message):
    with pytest.raises(ValueError, match=message):
        CellSpec(matrix, ops)
    assert not is_valid_cell(matrix, ops)


def test_cells_outside_the_space_are_clear_errors():
    chain8 = [[1 if j == i + 1 else 0 for j in range(8)] for i in range(8)]
    with pytest.raises(ValueError, match="8 vertices after pruning; NAS-Bench-101 allows at most 7"):
        CellSpec(chain8, [INPUT] + [CONV3X3] * 6 + [OUTPUT])
    dense = [[1 if j > i else 0 for j in range(7)] for i in range(7)]  # 21 edges
    with pytest.raises(ValueError, match="21 edges after pruning; NAS-Bench-101 allows at most 9"):
        CellSpec(dense, [INPUT] + [CONV3X3] * 5 + [OUTPUT])


# -- sampler ------------------------------------------------------------------------------------
def test_sampler_is_seeded_unique_and_valid():
    first = sample_cells(200, seed=3)
    assert first == sample_cells(200, seed=3)
    assert first != sample_cells(200, seed=4)
    hashes = [spec.hash() for spec in first]
    assert len(set(hashes)) == 200
    for spec in first:
        assert 2 <= spec.num_vertices <= 7 and spec.num_edges <= 9
        assert spec.matrix == spec.original_matrix  # returned pruned
        assert set(spec.ops[1:-1]) <= set(AVAILABLE_OPS)
    assert sample_cells(0) == []
    with pytest.raises(ValueError, match="423624 unique cells"):
        sample_cells(500_000)


# -- network ------------------------------------------------------------------------------------
def test_parameter_counts_match_the_dataset():
    assert count_parameters(INCEPTION_CELL) == 2_694_282
    assert count_parameters(NNI_CELL) == 8_555_530  # 8.55553 M


def test_vertex_channels_split_like_the_reference():
    # three vertices feed the output: 128 = 43 + 43 + 42; vertex 1 feeds vertex 2 (max rule)
    matrix = [
        [0, 1, 0, 1, 0],
        [0, 0, 1, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    assert compute_vertex_channels(64, 128, matrix) == [64, 43, 43, 42, 128]
    assert compute_vertex_channels(64, 128, [[0, 1], [0, 0]]) == [64, 128]


@pytest.mark.parametrize(
    "spec",
    [
        NNI_CELL,
        INCEPTION_CELL,
        CellSpec([[0, 1], [0, 0]], [INPUT, OUTPUT]),  # input straight to output
        CellSpec(  # uneven split: vertex 3 (from 2) is truncated by a channel, input->output skip
            [[0, 1, 0, 1, 1], [0, 0, 1, 0, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
            [INPUT, CONV3X3, MAXPOOL3X3, CONV1X1, OUTPUT],
        ),
    ],
    ids=["nni", "inception", "skip-only", "truncation"],
)
def test_network_forward_and_trace(spec):
    torch.manual_seed(0)
    network = NASBench101Network(spec, stem_channels=16).eval()
    with torch.no_grad():
        logits = network(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()

    layers = trace_cell(spec, stem_channels=16)
    # the meta-device shortcut traces exactly what a real forward pass sees
    assert layers == trace(network, (3, 32, 32))
    blocks = {layer.block for layer in layers}
    assert {"ConvNormActivation", "MaxPool", "AvgPool"} <= blocks <= set(BLOCK_LABELS) | {OTHER_LABEL}
    first, last = LayerRecord.from_text(layers[0].text), LayerRecord.from_text(layers[-1].text)
    assert first.kind == "conv" and first.in_size == (32, 32, 3) and first.out_size == (32, 32, 16)
    assert last.kind == "fc" and last.in_size == (1, 1, 64) and last.out_size == (1, 1, logits.shape[1])
    pools = [layer.record for layer in layers if layer.type.startswith("pool_max_k2x2")]
    assert [p.out_size[:2] for p in pools] == [(16, 16), (8, 8)]  # down-sampling between stacks
    convs_3x3 = sum(layer.type.startswith("conv_k3x3") for layer in layers)
    assert convs_3x3 == 1 + 9 * spec.ops.count(CONV3X3)  # stem + one per conv3x3 vertex per cell


# -- TFRecord / protobuf ------------------------------------------------------------------------
def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720, B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert masked_crc32c(b"") == 0xA282EAD8


def test_protobuf_wire_format():
    # 150 is the protobuf docs' varint example: 96 01
    assert ModelMetrics(trainable_parameters=150).to_bytes() == b"\x10\x96\x01"
    assert EvaluationData(validation_accuracy=0.5).to_bytes() == b"\x21" + struct.pack("<d", 0.5)
    metrics = ModelMetrics(
        [EvaluationData(0.0, 0.0, 0.1, 0.1, 0.1), EvaluationData(108.0, 1155.85, 1.0, 0.9376, 0.9312, "gs://m/ckpt-1")],
        trainable_parameters=2_694_282,
        total_time=1769.2,
    )
    assert ModelMetrics.from_bytes(metrics.to_bytes()) == metrics
    assert ModelMetrics.from_bytes(ModelMetrics(trainable_parameters=-3).to_bytes()).trainable_parameters == -3
    # unknown fields (varint 7, fixed32 8, bytes 9) are skipped
    extra = b"\x38\x01" + b"\x45\x00\x00\x00\x00" + b"\x4a\x02hi"
    assert ModelMetrics.from_bytes(extra + metrics.to_bytes()) == metrics
    with pytest.raises(ValueError, match="truncated protobuf"):
        ModelMetrics.from_bytes(metrics.to_bytes()[:-3])


def metrics_for(validation_accuracy, parameters=1000):
    return ModelMetrics(
        [
            EvaluationData(0.0, 0.0, 0.1, 0.1, 0.1),
            EvaluationData(54.0, 500.0, 0.8, validation_accuracy - 0.05, 0.8),
            EvaluationData(108.0, 1000.0, 1.0, validation_accuracy, validation_accuracy - 0.01),
        ],
        trainable_parameters=parameters,
        total_time=1100.0,
    )


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory):
    """Five modules, three 108-epoch runs each (interleaved), plus 36-epoch runs to ignore."""
    specs = sample_cells(5, seed=11)
    runs = {  # mean validation accuracy: 0.905 kept, 0.895 dropped, 0.95 kept, 0.80 dropped, 0.9001 kept
        0: (0.90, 0.905, 0.91),
        1: (0.91, 0.895, 0.88),
        2: (0.95, 0.95, 0.95),
        3: (0.79, 0.80, 0.81),
        4: (0.8999, 0.9001, 0.9003),
    }
    rows = []
    for repeat in range(3):
        for i, spec in enumerate(specs):
            rows.append(NASBenchRecord.from_spec(spec, metrics_for(runs[i][repeat]), epochs=108))
            rows.append(NASBenchRecord.from_spec(spec, metrics_for(0.99), epochs=36))
    path = tmp_path_factory.mktemp("nasbench") / "nasbench_small.tfrecord"
    assert write_nasbench_records(path, rows) == 30
    return path, specs


def test_reader_reads_every_record(benchmark_file):
    path, specs = benchmark_file
    records = list(read_nasbench_records(path))
    assert len(records) == 30
    first = records[0]
    assert first.module_hash == specs[0].hash() and first.epochs == 108 and first.spec == specs[0]
    assert first.final_validation_accuracy == 0.90 and first.metrics.trainable_parameters == 1000
    assert [r.epochs for r in records[:4]] == [108, 36, 108, 36]


def test_reader_filters_by_mean_validation_accuracy(benchmark_file):
    path, specs = benchmark_file
    kept = list(read_nasbench101(path, min_validation_accuracy=0.90, verify_hashes=True))
    assert [module_hash for _, _, module_hash in kept] == [specs[i].hash() for i in (0, 2, 4)]
    assert [spec for spec, _, _ in kept] == [specs[i] for i in (0, 2, 4)]
    assert [mean for _, mean, _ in kept] == pytest.approx([0.905, 0.95, 0.9001])
    assert len(list(read_nasbench101(path, min_validation_accuracy=None))) == 5
    everything_at_36 = list(read_nasbench101(path, epochs=36))
    assert [mean for _, mean, _ in everything_at_36] == pytest.approx([0.99] * 5)


def test_corrupt_records_are_clear_errors(benchmark_file, tmp_path):
    path, _ = benchmark_file
    payloads = list(read_tfrecords(path))
    data = bytearray(path.read_bytes())
    # a byte inside the data of record 2
    offset = sum(16 + len(p) for p in payloads[:2]) + 12 + 40
    bad = tmp_path / "corrupt.tfrecord"
    data[offset] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptRecordError, match=r"corrupt\.tfrecord: record 2 .* CRC-32C of its \d+ data bytes"):
        list(read_nasbench_records(bad))
    assert len(list(read_tfrecords(bad, verify_checksums=False))) == 30  # framing still intact
    # a byte of the length field of record 0
    data = bytearray(path.read_bytes())
    data[1] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptRecordError, match="record 0 .* CRC-32C of its length field"):
        next(read_tfrecords(bad))
    # a truncated file
    bad.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(CorruptRecordError, match="record 29 .* is truncated"):
        list(read_tfrecords(bad))
    # a record that is not a NAS-Bench-101 row
    write_tfrecords(bad, [b'["only", "three", "fields"]'])
    with pytest.raises(CorruptRecordError, match="record 0 is not a NAS-Bench-101 row"):
        list(read_nasbench_records(bad))


# -- corpus -------------------------------------------------------------------------------------
def check_corpus(dataset, names):
    assert dataset.features == ARCHITECTURE_FEATURES
    assert dataset.column_names == list(ARCHITECTURE_FEATURES)
    assert dataset["name"] == names
    assert set(dataset["source"]) == {"nasbench101"}
    for row in dataset:
        assert len(row["layers"]) == len(row["types"]) == len(row["blocks"]) == len(row["block_index"]) > 30
        assert all(t and not any(c.isspace() for c in t) for t in row["types"])
        assert all(not any(c.isspace() for c in text) for text in row["layers"])
        assert set(row["blocks"]) <= set(BLOCK_LABELS) | {OTHER_LABEL}
        assert row["block_index"] == sorted(row["block_index"])


def test_corpus_from_sampled_cells(tmp_path):
    dataset = nasbench101_corpus(num_cells=4, seed=5, cache_dir=str(tmp_path), progress=False)
    check_corpus(dataset, [spec.hash() for spec in sample_cells(4, seed=5)])
    assert dataset[0]["layers"] == [layer.text for layer in trace_cell(sample_cells(1, seed=5)[0])]
    limited = nasbench101_corpus(num_cells=4, seed=5, limit=2, cache_dir=str(tmp_path), progress=False)
    assert limited["name"] == dataset["name"][:2]


def test_corpus_from_the_benchmark_file_and_from_specs(benchmark_file, tmp_path):
    path, specs = benchmark_file
    dataset = nasbench101_corpus(tfrecord=path, cache_dir=str(tmp_path), progress=False)
    check_corpus(dataset, [specs[i].hash() for i in (0, 2, 4)])
    mine = nasbench101_corpus([NNI_CELL], cache_dir=str(tmp_path), progress=False)
    check_corpus(mine, [NNI_HASH])
    with pytest.raises(ValueError, match="either specs or tfrecord"):
        nasbench101_corpus([NNI_CELL], tfrecord=path)


def test_the_corpus_module_re_exports_the_parts_under_their_old_names():
    from gptnas_hf.corpora import nasbench101, nasbench101_cells, nasbench101_network, nasbench101_tfrecord

    parts = (nasbench101_cells, nasbench101_network, nasbench101_tfrecord)
    for name in nasbench101.__all__:
        homes = [part for part in parts if name in part.__all__]
        assert len(homes) <= 1, name
        if homes:
            assert getattr(nasbench101, name) is getattr(homes[0], name), name
    assert sorted(name for part in parts for name in part.__all__) == sorted(
        set(nasbench101.__all__) - {"SOURCE", "nasbench101_corpus"})
