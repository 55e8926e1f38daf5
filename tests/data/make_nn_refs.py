"""Reference data for tests/unit/test_layers.c and tests/unit/test_models.c.

Usage: make_nn_refs.py OUT_DIR   -> OUT_DIR/nn_layers.npz, OUT_DIR/nn_models.npz

Each case builds a torch.nn module with a fixed seed (parameters and
buffers perturbed away from their defaults so every entry matters), runs it
on a random input in the mode the case names, and stores under "<case>/":
  sd/<name>     the module's state dict before the forward
  in            the input (for losses: the prediction), target (losses)
  out           the output
  cot           a random cotangent shaped like the output
  gin           d sum(out * cot) / d input (float inputs)
  grad/<name>   d sum(out * cot) / d parameter, for every parameter (the
                models file keeps a subset for ResNet-18)
  after/<name>  the buffers after the forward (batch norm running stats)
  nparams       the parameter count (models)
ResNet-18 is stored once in float32 ("resnet18": state dict, outputs in
training and eval mode, running statistics); its gradients come from a
float64 run on the same weights ("resnet18_f64", no state dict of its own:
the test casts resnet18/sd to float64), because backpropagating through 20
training-mode batch norms on a batch of 2 is ill-conditioned enough that
float32 gradients (torch's as much as fern's) differ from the exact ones by
about 1% of their scale.
The C tests build the matching fern cell for each case name (the two lists
must agree), load sd/ with strict name matching, and compare.
"""
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
torch.set_num_threads(1)


def seed_for(name):
    torch.manual_seed(zlib.crc32(name.encode()) & 0x7FFFFFFF)


def perturb(module):
    """Move every float parameter/buffer away from its default init."""
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                t.copy_(0.5 + torch.rand_like(t))
            elif leaf == "running_mean":
                t.copy_(0.3 * torch.randn_like(t))
            elif leaf == "weight" and t.dim() == 1:  # norm scales
                t.copy_(1.0 + 0.3 * torch.randn_like(t))
            elif leaf == "bias" and t.dim() == 1 and t.abs().max() == 0:
                t.copy_(0.2 * torch.randn_like(t))


def np_of(t):
    return t.detach().cpu().numpy().copy()


def run_case(refs, name, module, x, dtype=torch.float64, train=True, keep_grads=None, do_perturb=True,
             extra_inputs=(), save_sd=True):
    seed_for(name)
    module = module.to(dtype)
    if do_perturb:
        perturb(module)
    module.train(train)
    if save_sd:
        for k, v in module.state_dict().items():
            refs["%s/sd/%s" % (name, k)] = np_of(v)
    if x.is_floating_point():
        x = x.detach().to(dtype).clone().requires_grad_(True)
    refs[name + "/in"] = np_of(x)
    out = module(x, *extra_inputs)
    cot = torch.randn_like(out)
    refs[name + "/out"] = np_of(out)
    refs[name + "/cot"] = np_of(cot)
    (out * cot).sum().backward()
    if x.is_floating_point():
        refs[name + "/gin"] = np_of(x.grad)
    for k, p in module.named_parameters():
        if keep_grads is None or k in keep_grads:
            refs["%s/grad/%s" % (name, k)] = np_of(p.grad)
    for k, b in module.named_buffers():
        refs["%s/after/%s" % (name, k)] = np_of(b)
    refs[name + "/nparams"] = np.array(sum(p.numel() for p in module.parameters()), dtype=np.int64)
    return module


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def layer_cases():
    refs = {}
    C = run_case
    # linear
    seed_for("linear"); C(refs, "linear", nn.Linear(5, 4), randn(3, 5))
    seed_for("linear_nobias_3d"); C(refs, "linear_nobias_3d", nn.Linear(5, 4, bias=False), randn(2, 3, 5))
    seed_for("linear_1d"); C(refs, "linear_1d", nn.Linear(6, 2), randn(6))
    seed_for("dense_f32"); C(refs, "dense_f32", nn.Linear(7, 3), randn(4, 7), dtype=torch.float32)
    # convolutions
    seed_for("conv1d"); C(refs, "conv1d", nn.Conv1d(3, 4, 3, stride=2, padding=1), randn(2, 3, 9))
    seed_for("conv1d_groups_dil")
    C(refs, "conv1d_groups_dil", nn.Conv1d(4, 6, 3, dilation=2, groups=2, bias=False), randn(2, 4, 11))
    seed_for("conv2d")
    C(refs, "conv2d", nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0)), randn(2, 3, 7, 6))
    seed_for("conv2d_same_groups")
    C(refs, "conv2d_same_groups", nn.Conv2d(4, 6, 3, padding="same", groups=2, dilation=2), randn(2, 4, 6, 5))
    seed_for("conv2d_unbatched")
    C(refs, "conv2d_unbatched", nn.Conv2d(2, 3, 3, padding=1), randn(2, 5, 4))
    seed_for("conv2d_f32")
    C(refs, "conv2d_f32", nn.Conv2d(3, 8, 3, padding=1), randn(2, 3, 8, 8), dtype=torch.float32)
    seed_for("convt2d")
    C(refs, "convt2d", nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), randn(2, 4, 4, 5))
    seed_for("convt2d_groups")
    C(refs, "convt2d_groups", nn.ConvTranspose2d(4, 6, (2, 3), stride=(1, 2), groups=2, bias=False),
      randn(1, 4, 3, 3))
    # batch norm
    seed_for("bn1d_train"); C(refs, "bn1d_train", nn.BatchNorm1d(4), randn(6, 4) * 2 + 1)
    seed_for("bn1d_3d_train"); C(refs, "bn1d_3d_train", nn.BatchNorm1d(3, momentum=0.3), randn(4, 3, 5))
    seed_for("bn2d_train"); C(refs, "bn2d_train", nn.BatchNorm2d(3), randn(2, 3, 4, 5) * 3 - 1)
    seed_for("bn2d_cma")
    m = nn.BatchNorm2d(3, momentum=None)
    m.num_batches_tracked.fill_(3)
    C(refs, "bn2d_cma", m, randn(2, 3, 3, 3))
    seed_for("bn2d_eval"); C(refs, "bn2d_eval", nn.BatchNorm2d(3), randn(2, 3, 4, 4), train=False)
    seed_for("bn2d_notrack")
    C(refs, "bn2d_notrack", nn.BatchNorm2d(3, affine=False, track_running_stats=False), randn(2, 3, 3, 4),
      train=False)
    seed_for("bn2d_f32_train")
    C(refs, "bn2d_f32_train", nn.BatchNorm2d(4), randn(4, 4, 5, 5), dtype=torch.float32)
    # layer / group norm
    seed_for("layernorm"); C(refs, "layernorm", nn.LayerNorm((4, 5)), randn(2, 3, 4, 5))
    seed_for("layernorm_noaffine")
    C(refs, "layernorm_noaffine", nn.LayerNorm(6, eps=1e-3, elementwise_affine=False), randn(3, 6))
    seed_for("groupnorm"); C(refs, "groupnorm", nn.GroupNorm(2, 6), randn(2, 6, 3, 3))
    # embedding (row 0 perturbed away from zero: forward reads it, gradient skips it)
    seed_for("embedding")
    m = nn.Embedding(10, 4, padding_idx=0)
    with torch.no_grad():
        m.weight[0].copy_(torch.randn(4))
    C(refs, "embedding", m, torch.tensor([[0, 3, 9, 0, 2], [5, 5, 1, 0, 7]]), do_perturb=False)
    seed_for("embedding_neg_pad")
    C(refs, "embedding_neg_pad", nn.Embedding(7, 3, padding_idx=-1), torch.tensor([6, 2, 6, 0]))
    # pooling and reshaping
    seed_for("maxpool")
    C(refs, "maxpool", nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), randn(2, 3, 7, 7))
    seed_for("maxpool_unbatched"); C(refs, "maxpool_unbatched", nn.MaxPool2d(2), randn(3, 6, 6))
    seed_for("avgpool")
    C(refs, "avgpool", nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), randn(2, 3, 7, 6))
    seed_for("avgpool_ceil")
    C(refs, "avgpool_ceil", nn.AvgPool2d((2, 3), stride=(2, 2), ceil_mode=True), randn(1, 2, 5, 7))
    seed_for("adaptive"); C(refs, "adaptive", nn.AdaptiveAvgPool2d((3, 2)), randn(2, 3, 7, 5))
    seed_for("flatten"); C(refs, "flatten", nn.Flatten(), randn(2, 3, 4))
    seed_for("flatten_mid"); C(refs, "flatten_mid", nn.Flatten(1, 2), randn(2, 3, 4, 5))
    # activations
    acts = {
        "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.2), "elu": nn.ELU(0.7), "gelu": nn.GELU(),
        "gelu_tanh": nn.GELU(approximate="tanh"), "silu": nn.SiLU(), "sigmoid": nn.Sigmoid(),
        "tanh": nn.Tanh(), "softmax": nn.Softmax(dim=1), "log_softmax": nn.LogSoftmax(dim=-1),
        "identity": nn.Identity(), "dropout_eval": nn.Dropout(0.3),
    }
    for k, m in acts.items():
        seed_for(k)
        C(refs, k, m, randn(3, 7) * 2, train=(k != "dropout_eval"))
    # a container
    seed_for("sequential")
    C(refs, "sequential", nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)), randn(4, 6))
    return refs


class LossWrap(nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, x, target):
        return self.loss(x, target)


def loss_case(refs, name, loss, pred, target):
    refs[name + "/target"] = np_of(target)
    m = run_case(refs, name, loss, pred, extra_inputs=(target,), do_perturb=False)
    return m


def loss_cases(refs):
    L = loss_case
    w5 = torch.rand(5, dtype=torch.float64) + 0.5
    seed_for("ce_mean")
    t = torch.tensor([0, 2, 4, 1, 2, 3])
    L(refs, "ce_mean", nn.CrossEntropyLoss(weight=w5, label_smoothing=0.1, ignore_index=2), randn(6, 5), t)
    seed_for("ce_sum_nd")
    L(refs, "ce_sum_nd", nn.CrossEntropyLoss(reduction="sum"), randn(2, 4, 3, 3), torch.randint(0, 4, (2, 3, 3)))
    seed_for("ce_none_probs")
    L(refs, "ce_none_probs", nn.CrossEntropyLoss(reduction="none", label_smoothing=0.2), randn(5, 4),
      torch.softmax(randn(5, 4), 1))
    seed_for("nll_mean")
    L(refs, "nll_mean", nn.NLLLoss(weight=w5, ignore_index=1), torch.log_softmax(randn(6, 5), 1),
      torch.tensor([1, 0, 4, 1, 3, 2]))
    seed_for("nll_none")
    L(refs, "nll_none", nn.NLLLoss(reduction="none"), torch.log_softmax(randn(4, 3), 1), torch.tensor([2, 0, 1, 1]))
    for red in ("mean", "none"):
        seed_for("mse_" + red)
        L(refs, "mse_" + red, nn.MSELoss(reduction=red), randn(3, 4), randn(3, 4))
    for red in ("mean", "sum"):
        seed_for("l1_" + red)
        L(refs, "l1_" + red, nn.L1Loss(reduction=red), randn(3, 4), randn(3, 4))
    seed_for("smoothl1_mean")
    L(refs, "smoothl1_mean", nn.SmoothL1Loss(beta=0.5), randn(4, 5), randn(4, 5))
    seed_for("smoothl1_none")
    L(refs, "smoothl1_none", nn.SmoothL1Loss(reduction="none", beta=1.0), randn(4, 5) * 2, randn(4, 5))
    seed_for("smoothl1_beta0")
    L(refs, "smoothl1_beta0", nn.SmoothL1Loss(reduction="sum", beta=0.0), randn(4, 5), randn(4, 5))
    seed_for("huber_mean")
    L(refs, "huber_mean", nn.HuberLoss(delta=0.7), randn(4, 5), randn(4, 5))
    seed_for("huber_none")
    L(refs, "huber_none", nn.HuberLoss(reduction="none", delta=1.0), randn(4, 5) * 2, randn(4, 5))
    seed_for("bce_mean")
    L(refs, "bce_mean", nn.BCELoss(weight=torch.rand(4, dtype=torch.float64) + 0.5),
      torch.rand(3, 4, dtype=torch.float64) * 0.9 + 0.05, torch.rand(3, 4, dtype=torch.float64))
    seed_for("bce_none")
    L(refs, "bce_none", nn.BCELoss(reduction="none"), torch.rand(3, 4, dtype=torch.float64) * 0.9 + 0.05,
      (torch.rand(3, 4) > 0.5).double())
    seed_for("bcel_mean")
    L(refs, "bcel_mean", nn.BCEWithLogitsLoss(weight=torch.rand(3, 4, dtype=torch.float64) + 0.5,
                                              pos_weight=torch.rand(4, dtype=torch.float64) * 2),
      randn(3, 4) * 2, torch.rand(3, 4, dtype=torch.float64))
    seed_for("bcel_sum")
    L(refs, "bcel_sum", nn.BCEWithLogitsLoss(reduction="sum"), randn(2, 5) * 3, (torch.rand(2, 5) > 0.5).double())


# ---- models ------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """MindSpore LeNet5's names; conv1 padded by 2 for 28x28 inputs."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNetCifar(nn.Module):
    """torchvision.models.resnet18's names, CIFAR stem (3x3 conv, no max pool)."""

    def __init__(self, blocks=(2, 2, 2, 2), num_classes=10, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        inplanes = 64
        for i, n in enumerate(blocks):
            planes = 64 << i
            layers = []
            for b in range(n):
                layers.append(BasicBlock(inplanes, planes, 2 if (b == 0 and i > 0) else 1))
                inplanes = planes
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def model_cases():
    refs = {}
    f32 = torch.float32
    seed_for("mlp")
    mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    run_case(refs, "mlp", mlp, torch.randn(4, 784), dtype=f32, do_perturb=False)
    seed_for("lenet5")
    run_case(refs, "lenet5", LeNet5(1, 10), torch.randn(2, 1, 28, 28), dtype=f32, do_perturb=False)
    seed_for("resnet18")
    net = ResNetCifar()
    x = torch.randn(2, 3, 32, 32)
    net = run_case(refs, "resnet18", net, x, dtype=f32, keep_grads=set())
    del refs["resnet18/gin"]  # float32 gradients: see the module comment
    # eval mode with the running statistics the training forward left
    net.eval()
    with torch.no_grad():
        refs["resnet18/out_eval"] = np_of(net(x))
    # gradients in float64 from the same weights
    net64 = ResNetCifar()
    net64.load_state_dict({k: torch.tensor(refs["resnet18/sd/" + k]) for k in net64.state_dict()})
    keep = {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.weight", "layer3.1.bn1.bias", "layer4.0.downsample.0.weight",
            "layer4.1.bn2.weight", "fc.weight", "fc.bias"}
    run_case(refs, "resnet18_f64", net64, x.double(), dtype=torch.float64, keep_grads=keep, do_perturb=False,
             save_sd=False)
    return refs


layers = layer_cases()
loss_cases(layers)
np.savez(os.path.join(out_dir, "nn_layers.npz"), **layers)
np.savez(os.path.join(out_dir, "nn_models.npz"), **model_cases())
