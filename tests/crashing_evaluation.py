"""A candidate evaluation that kills its own process for some genomes, as a C library's fatal
error does (the crash tests run it in the search's worker processes)."""

import os
import signal
import sys

from gptnas_hf.search.candidate import evaluate_candidate
from gptnas_hf.search_space import Genome

#: what the dying process writes to stderr first: a crash's last words
LAST_WORDS = "free(): invalid next size (normal)"


def dies_for(genome) -> bool:
    """About a third of the genomes, decided by the genome alone (the same in every process)."""
    return int(Genome.from_json(genome).hash(), 16) % 3 == 0


def evaluate_or_die(genome, data, config, **kwargs):
    if dies_for(genome):
        print(LAST_WORDS, file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    return evaluate_candidate(genome, data, config, **kwargs)
