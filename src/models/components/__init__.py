"""Plain `nn.Module` networks. They know nothing of Lightning, so they can be exported and reused alone.

Every network here follows one contract, so the CLI can fill in what the datamodule knows:
`__init__(num_classes, in_channels, image_size, ...)`, and two parts named `features` (the body)
and `classifier` (the head), so per-group learning rates can select `backbone.features.*` or
`backbone.classifier.*` for any of them.
"""

from src.models.components.cifar_cnn import CifarCNN
from src.models.components.convnet import ConvNet
from src.models.components.hub import TimmNet, TorchvisionNet
from src.models.components.lenet import LeNet
from src.models.components.mlp import MLP
from src.models.components.resnet import ResNet
from src.models.components.torchvision_resnet import TorchvisionResNet

__all__ = ["MLP", "ConvNet", "LeNet", "CifarCNN", "ResNet", "TorchvisionResNet", "TorchvisionNet", "TimmNet"]
