"""Benchmarks: each runs as ``python -m bench.NAME --budget small|paper [--seeds N]`` and writes
``bench/results/NAME.{json,png}`` and its row of ``bench/RESULTS.md``; ``python -m bench.all``
runs them all in sequence. Shared pieces live in :mod:`bench.common`.

* ``reconstruction``: seconds for a batch of 30 genomes through ``pipeline("nas-reconstruction")``;
* ``search_time`` (paper Table 6): non-training seconds per generation, GA / Random, with and without the GPT;
* ``eval_speed``: candidate training images/s and s/epoch by train scope, and reconstruction time;
* ``gpt_quality``: held-out next-layer and block accuracy against a bigram baseline;
* ``mask_rate`` (Table 4): accuracy of random genomes rebuilt at mask rates 0-0.8;
* ``fidelity`` (Table 5, Fig. 4): correlation of short vs long training, predicted-only vs full, against
  our own reference ranking (in-sample: the same networks chose the proxy);
* ``fidelity_nas_bench_201``: the trained CPU proxy and the zero-cost proxies against NAS-Bench-201's
  200-epoch accuracies (an independent truth), with the published zero-cost figures beside ours;
* ``with_without_gpt`` (Fig. 6-7): GA vs GA+GPT and Random vs Random+GPT searches over seeds;
* ``nas_bench_201``: random, REA, GA, GA+GPT, Random+GPT, GA + adapted GPT and a size-prior control on
  NAS-Bench-201's table, hundreds of seeds, paired tests;
* ``prefilter``, ``reconstruction_effect``, ``reference_ranking``, ``search_wall``: see each module.
"""
