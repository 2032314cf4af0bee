import json

import pytest

from gptnas_hf.cli import main
from gptnas_hf.encoding import LayerRecord
from gptnas_hf.search_space import Genome


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_encode_torchvision_prints_table_1_lines(capsys):
    code, out, _ = run(capsys, "encode", "--torchvision", "resnet18")
    lines = out.splitlines()
    assert code == 0 and len(lines) > 50
    assert lines[0] == "id:1;in_size:224-224-3;out_size:112-112-64;kernel:7-7;stride:2-2;padding:3-3-3-3;dilation:1;groups:1;bias_used:No"
    assert all(LayerRecord.from_text(line).to_text() == line for line in lines)
    code, out, _ = run(capsys, "encode", "--torchvision", "resnet18", "--types")
    assert out.splitlines()[0] == "conv_k7x7_s2_p3_d1_g1_nobias_x16"  # vocabulary v2: width relative to the input


def test_sample_genome_then_encode_and_reconstruct_it(capsys, tmp_path):
    code, out, _ = run(capsys, "sample-genome", "--seed", "3")
    genome = Genome.from_json(out)
    assert code == 0 and 10 <= len(genome) <= 20
    path = tmp_path / "genome.json"
    path.write_text(out)
    code, out, _ = run(capsys, "encode", "--genome", str(path), "--blocks", "--input-shape", "1,28,28")
    assert code == 0 and out.splitlines()[0].split("\t")[0] == genome[0]["kind"]
    assert "in_size:28-28-1" in out.splitlines()[0]
    code, out, _ = run(capsys, "reconstruct", str(path), "--mask-rate", "1.0", "--seed", "0", "--details")
    result = json.loads(out)
    assert code == 0 and result["predicted_blocks"] == list(range(len(genome)))
    Genome.from_json(result["genome"])


def test_bad_inputs_give_clear_errors(capsys, tmp_path):
    code, _, err = run(capsys, "encode", "--torchvision", "resnet19")
    assert code == 2 and "unknown torchvision network 'resnet19'" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"kind": "Conv", "width": 8, "stride": 3}]))
    code, _, err = run(capsys, "encode", "--genome", str(bad))
    assert code == 2 and "block 0 (Conv)" in err and "stride" in err
    code, _, err = run(capsys, "retrain", "--run", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err
    with pytest.raises(SystemExit):
        main(["encode", "--torchvision", "resnet18", "--input-shape", "3,32"])


def test_corpus_and_tokenizer_commands(capsys, tmp_path):
    import datasets
    from transformers import AutoTokenizer

    code, out, _ = run(capsys, "corpus", "--out", str(tmp_path / "corpora"), "--nasbench-cells", "5")
    assert code == 0
    zoo = datasets.load_from_disk(str(tmp_path / "corpora" / "zoo"))
    nb = datasets.load_from_disk(str(tmp_path / "corpora" / "nasbench101"))
    assert zoo.num_rows == 36 and nb.num_rows == 5
    assert set(nb.column_names) >= {"name", "source", "layers", "types", "blocks"}
    code, out, _ = run(capsys, "tokenizer", "--corpus", str(tmp_path / "corpora"), "--out", str(tmp_path / "tok"))
    assert code == 0 and "layer types" in out
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert tokenizer.convert_tokens_to_ids("pool_avg_global") != tokenizer.unk_token_id
