"""gptnas-hf: GPT-NAS, Hugging Face-native."""

__version__ = "0.1.0"
