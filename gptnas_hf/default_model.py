"""Where the architecture GPT shipped inside the package lives (weights, config and tokenizer
files; its code is the package's own). A module of its own so that the search, the training
and the CLI can name it without importing the package's top level."""

from pathlib import Path

#: the architecture GPT shipped inside the package
DEFAULT_MODEL = str(Path(__file__).resolve().parent / "checkpoints" / "gptnas-default")
