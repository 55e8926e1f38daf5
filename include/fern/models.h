/*
 * fern/models.h — the model zoo: classic networks, each one call returning
 * a cell built from the layer library (fern/layers.h). Parameter names
 * follow the PyTorch (torchvision) or MindSpore model definitions named
 * below, so their state dicts load by name. Parameters use the layer dtype
 * (fern_layers_default_dtype) and are initialized from fern's generator.
 */
#ifndef FERN_MODELS_H
#define FERN_MODELS_H

#include "fern/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A multilayer perceptron: Linear(in, hidden[0]), ReLU, Linear(hidden[0],
 * hidden[1]), ReLU, ..., Linear(hidden[n-1], out) as a Sequential, named
 * like torch.nn.Sequential ("0.weight", "0.bias", "2.weight", ...).
 * n_hidden may be 0 (a single Linear). Input (N, in) -> (N, out) logits.
 * fern_model_mlp(784, (int64_t[]){512, 512}, 2, 10) is the classic MNIST
 * MLP. */
fern_cell *fern_model_mlp(int64_t in_features, const int64_t *hidden, int n_hidden,
                          int64_t out_features);

/* LeNet-5 for 28x28 inputs (MNIST), MindSpore's LeNet5 layout and names:
 *   conv1  Conv2d(in_channels, 6, 5x5, padding 2)  -> relu -> max_pool 2x2
 *   conv2  Conv2d(6, 16, 5x5)                      -> relu -> max_pool 2x2
 *   flatten (16*5*5 = 400)
 *   fc1    Linear(400, 120) -> relu
 *   fc2    Linear(120, 84)  -> relu
 *   fc3    Linear(84, num_classes)
 * (children "relu", "max_pool2d" and "flatten" hold no parameters).
 * Input (N, in_channels, 28, 28) -> (N, num_classes) logits. */
fern_cell *fern_model_lenet5(int64_t in_channels, int64_t num_classes);

/* ResNet with BasicBlocks, CIFAR variant: a 3x3 stride-1 stem conv (no 7x7
 * conv, no max pool), four stages of blocks[i] BasicBlocks with 64, 128,
 * 256, 512 channels (stages 2-4 start with stride 2 and a 1x1 conv + batch
 * norm downsample), adaptive average pooling to 1x1 and a Linear head.
 * torchvision's parameter names: conv1, bn1, layer1.0.conv1, layer1.0.bn1,
 * layer1.0.conv2, layer1.0.bn2, layer2.0.downsample.0 (conv),
 * layer2.0.downsample.1 (bn), ..., fc. Init like torchvision: convs
 * kaiming_normal_(mode='fan_out', nonlinearity='relu'), batch norms weight
 * 1 bias 0, fc torch's Linear default. Input (N, in_channels, H, W) (32x32
 * for CIFAR) -> (N, num_classes) logits. */
fern_cell *fern_model_resnet_cifar(const int blocks[4], int64_t num_classes, int64_t in_channels);
/* blocks {2, 2, 2, 2}: 11,173,962 parameters for 10 classes and 3 channels. */
fern_cell *fern_model_resnet18(int64_t num_classes, int64_t in_channels);
/* blocks {3, 4, 6, 3}. */
fern_cell *fern_model_resnet34(int64_t num_classes, int64_t in_channels);

#ifdef __cplusplus
}
#endif
#endif /* FERN_MODELS_H */
