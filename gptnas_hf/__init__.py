"""gptnas-hf: GPT-NAS, Hugging Face-native.

Importing the package registers the architecture model with the Auto classes and the
``"nas-reconstruction"`` pipeline with transformers.
"""

__version__ = "0.1.0"

from transformers import AutoConfig, AutoModelForCausalLM
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_gptnas import GPTNASConfig
from .default_model import DEFAULT_MODEL
from .encoding import BLOCK_LABELS, LayerRecord, layer_type, trace
from .modeling_gptnas import GPTNASForArchitectureModeling

AutoConfig.register(GPTNASConfig.model_type, GPTNASConfig, exist_ok=True)
AutoModelForCausalLM.register(GPTNASConfig, GPTNASForArchitectureModeling, exist_ok=True)
GPTNASConfig.register_for_auto_class()
GPTNASForArchitectureModeling.register_for_auto_class("AutoModelForCausalLM")

from .pipeline_nas_reconstruction import NASReconstructionPipeline  # noqa: E402

PIPELINE_REGISTRY.register_pipeline(
    "nas-reconstruction", pipeline_class=NASReconstructionPipeline, pt_model=AutoModelForCausalLM, type="text"
)

# searched networks as image classifiers (export / push of search runs: gptnas_hf.hub)
from transformers import AutoImageProcessor, AutoModelForImageClassification  # noqa: E402

from .image_processing_searched import SearchedNetImageProcessor  # noqa: E402
from .modeling_searched import SearchedNetConfig, SearchedNetForImageClassification  # noqa: E402

AutoConfig.register(SearchedNetConfig.model_type, SearchedNetConfig, exist_ok=True)
AutoModelForImageClassification.register(SearchedNetConfig, SearchedNetForImageClassification, exist_ok=True)
AutoImageProcessor.register(SearchedNetConfig, image_processor_classes={"torchvision": SearchedNetImageProcessor},
                            exist_ok=True)
SearchedNetConfig.register_for_auto_class()
SearchedNetForImageClassification.register_for_auto_class("AutoModelForImageClassification")
SearchedNetImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "BLOCK_LABELS",
    "DEFAULT_MODEL",
    "GPTNASConfig",
    "GPTNASForArchitectureModeling",
    "LayerRecord",
    "NASReconstructionPipeline",
    "SearchedNetConfig",
    "SearchedNetForImageClassification",
    "SearchedNetImageProcessor",
    "layer_type",
    "trace",
]
