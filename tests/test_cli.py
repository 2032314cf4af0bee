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


def test_tokenizer_from_recipes_covers_their_corpora(capsys, tmp_path):
    from transformers import AutoTokenizer

    from gptnas_hf.training import load_corpus

    recipes = []
    for name, corpus in (("pre", [{"source": "nasbench101", "num_cells": 4, "seed": 0},
                                  {"source": "nasbench101", "num_cells": 4, "seed": 1, "stem_channels": 16}]),
                         ("fine", {"source": "zoo", "networks": ["resnet18", "shufflenet_v2_x0_5"], "input_sizes": [224, 32],
                                   "width_multipliers": [1.0, 0.5]})):
        path = tmp_path / f"{name}.yaml"
        path.write_text(__import__("yaml").safe_dump({"name": name, "corpus": corpus, "training": {"output_dir": str(tmp_path)}}))
        recipes.append(path)
    code, out, _ = run(capsys, "tokenizer", "--recipe", str(recipes[0]), "--recipe", str(recipes[1]),
                       "--out", str(tmp_path / "tok"))
    assert code == 0 and "layer types" in out
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    fine = load_corpus({"source": "zoo", "networks": ["resnet18", "shufflenet_v2_x0_5"], "input_sizes": [224, 32],
                        "width_multipliers": [1.0, 0.5]})
    assert fine.num_rows == 2 * 2 + 1 * 2  # resnet18 has no width knob; shufflenet at two widths
    types = {t for row in fine["types"] for t in row}
    assert all(tokenizer.convert_tokens_to_ids(t) != tokenizer.unk_token_id for t in types)
    assert len(tokenizer) - 5 == len(types | {t for row in load_corpus(
        [{"source": "nasbench101", "num_cells": 4, "seed": 0},
         {"source": "nasbench101", "num_cells": 4, "seed": 1, "stem_channels": 16}])["types"] for t in row})
