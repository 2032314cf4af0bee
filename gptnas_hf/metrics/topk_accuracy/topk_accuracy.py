"""Top-1 / top-k accuracy, an `evaluate` metric module shipped inside gptnas_hf.

Load it from its local directory (never from the Hub)::

    >>> metric = evaluate.load(gptnas_hf.evaluation.METRIC_PATH)  # class ids, or ranked class ids
    >>> metric = evaluate.load(gptnas_hf.evaluation.METRIC_PATH, config_name="logits")  # scores
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Top-k accuracy: the fraction of examples whose reference class is among the k classes ranked
highest by the model. Top-1 is the usual accuracy. The paper (GPT-NAS) reports top-1 on
CIFAR-10/100 and top-1 and top-5 on ImageNet-1K.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: with the default config, either one class id per example (only `top1` is
        returned) or a list of class ids per example ranked best first (at least k of them,
        or all classes when there are fewer than k); with `config_name="logits"`, one list of
        scores per example (one score per class, higher is better).
    references: the true class id of each example.
    k (int, default 5): the k of top-k.
Returns:
    top1 (float): top-1 accuracy in [0, 1].
    top{k} (float): top-k accuracy in [0, 1] (absent when predictions are single class ids).
Examples:
    >>> metric = evaluate.load(METRIC_PATH, config_name="logits")
    >>> metric.compute(predictions=[[0.1, 0.9], [0.8, 0.2]], references=[1, 1], k=2)
    {'top1': 0.5, 'top2': 1.0}
"""

_CITATION = """
@article{yu2023gptnas,
  title={GPT-NAS: Evolutionary Neural Architecture Search with the Generative Pre-Trained Model},
  author={Yu, Caiyang and Liu, Xianggen and Wang, Yifan and Liu, Yun and Feng, Wentao and Deng, Xiong and Tang, Chenwei and Lv, Jiancheng},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopkAccuracy(evaluate.Metric):
    def _info(self):
        if self.config_name == "logits":
            features = datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            )
        else:
            features = [
                datasets.Features(
                    {"predictions": datasets.Sequence(datasets.Value("int64")), "references": datasets.Value("int64")}
                ),
                datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            ]
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
        )

    def _compute(self, predictions, references, k=5):
        references = np.asarray(references, dtype=np.int64)
        predictions = np.asarray(predictions)
        if self.config_name == "logits":
            # Stable sort of the negated scores: ties keep the lower class id first.
            ranked = np.argsort(-predictions.astype(np.float64), axis=1, kind="stable")[:, :k]
        elif predictions.ndim == 1:
            return {"top1": float(np.mean(predictions.astype(np.int64) == references))}
        else:
            ranked = predictions.astype(np.int64)
        hits = ranked == references[:, None]
        return {"top1": float(np.mean(hits[:, 0])), f"top{k}": float(np.mean(hits[:, :k].any(axis=1)))}
