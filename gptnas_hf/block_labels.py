"""The block classes the architecture GPT's FCN chooses among (the paper's Table 2).

A module of its own so that the model's configuration reads the labels without importing the
tracer (``encoding``)."""

BLOCK_LABELS = (
    "ConvNormActivation",
    "SqueezeExcitation",
    "Inception",
    "AvgPool",
    "ResBottleneckBlock",
    "Stem",
    "Bottleneck",
    "BasicBlock",
    "InvertedResidual",
    "MaxPool",
    "BatchNorm",
    "ReLU",
    "Conv",
)
#: the label of a layer outside every Table-2 block
OTHER_LABEL = "Other"
