"""Benchmarks: each runs as ``python -m bench.NAME --budget small|paper [--seeds N]`` and writes
``bench/results/NAME.{json,png}`` and its row of ``bench/RESULTS.md``; ``python -m bench.all``
runs them all in sequence. Shared pieces live in :mod:`bench.common`. Every benchmark module
(a ``NAME`` and a ``main``) is listed here, one line each (``tests/test_bench_smoke.py`` checks it):

* ``reconstruction``: seconds for a batch of 30 genomes through ``pipeline("nas-reconstruction")``;
* ``search_time`` (paper Table 6): non-training seconds per generation, GA / Random, with and without the GPT;
* ``eval_speed``: candidate training images/s and s/epoch by train scope, and reconstruction time;
* ``gpt_quality``: held-out next-layer and block accuracy against a bigram baseline;
* ``reference_ranking``: the "full training" ranking of random and hand-designed genomes of the CPU
  proxy space, measured once, that ``fidelity`` scores every cheap proxy against;
* ``fidelity`` (Table 5, Fig. 4): correlation of short vs long training, predicted-only vs full, against
  our own reference ranking (in-sample: the same networks chose the proxy);
* ``fidelity_nas_bench_201``: the trained CPU proxy and the zero-cost proxies against NAS-Bench-201's
  200-epoch accuracies (an independent truth), with the published zero-cost figures beside ours;
* ``reconstruction_effect``: whether the GPT's rewrite makes a network better than chance would
  (paired, against a control that replaces the same blocks by kinds drawn from the zoo's frequencies);
* ``mask_rate`` (Table 4): accuracy of random genomes rebuilt at mask rates 0-0.8;
* ``with_without_gpt`` (Fig. 6-7): GA vs GA+GPT and Random vs Random+GPT searches over seeds;
* ``prefilter``: whether a zero-cost pre-filter makes the GA find better networks for the same
  number of trainings (paired, with both arms' cost);
* ``search_wall``: search wall time on the quick-start recipe, quiet and under load, with the
  package's thread and process policy against torch's default;
* ``nas_bench_201``: random, REA, GA, GA+GPT, Random+GPT, GA + adapted GPT, size-prior controls and
  proposal filters on NAS-Bench-201's table, hundreds of seeds, paired tests, the shipped design
  confirmed on fresh seeds;
* ``proposal_filter_blocks``: NAS-Bench-201's chosen design (the proposal filter, size with the
  GPT breaking ties) carried back to the block space, against the GA and a size-only filter
  (paired by seed, the best network retrained and scored on the test split).
"""
