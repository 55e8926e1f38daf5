"""PyTorch 1.13 side of bench/compare.py: the same training steps as
bench_train.c (LeNet-5 and MLP at batch 64, ResNet-18 CIFAR at batch 32,
SGD momentum 0.9, cross-entropy) and one full LeNet Fashion-MNIST epoch
with a DataLoader (to-tensor + normalize, shuffle, batch 64).
usage: torch_train.py THREADS [--quick] [--data DIR]"""
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

threads = int(sys.argv[1])
quick = "--quick" in sys.argv
data_dir = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else "/usr/share/datasets/fashion-mnist"
torch.set_num_threads(threads)
torch.manual_seed(0)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers.append(nn.Sequential(Block(cin, cout, stride), Block(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def bench(name, net, x, y, warm, iters):
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    ts = []
    for i in range(warm + iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if i >= warm:
            ts.append(time.perf_counter() - t0)
    ts.sort()
    print("train %s torch %.3f" % (name, ts[len(ts) // 2] * 1e3), flush=True)


bench("lenet", LeNet5(), torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)), 10, 5 if quick else 100)
mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
bench("mlp", mlp, torch.randn(64, 784), torch.randint(0, 10, (64,)), 10, 5 if quick else 100)
bench("resnet18", ResNet18(), torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,)), 2, 3 if quick else 8)


def time_fwd(name, f, x, iters):
    with torch.no_grad():
        for _ in range(5):
            f(x)
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter()
            f(x)
            ts.append(time.perf_counter() - t0)
    ts.sort()
    print("fwd %s torch %.4f" % (name, ts[len(ts) // 2] * 1e3), flush=True)


def chain(x0):
    x = x0
    for _ in range(10):
        x = torch.sigmoid(torch.tanh(x * 0.9 + 0.1) * x0)
    return x


mlp_fwd = lambda x: torch.softmax(mlp(x), -1)
n_it = 50 if quick else 300
time_fwd("mlp_b1", mlp_fwd, torch.randn(1, 784), n_it)
time_fwd("mlp_b64", mlp_fwd, torch.randn(64, 784), n_it)
time_fwd("chain50_1k", chain, torch.randn(1000), n_it)
time_fwd("chain50_1m", chain, torch.randn(1000000), 5 if quick else 20)


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class Fashion(torch.utils.data.Dataset):
    def __init__(self):
        self.x = idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
        self.y = idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")).astype(np.int64)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = torch.from_numpy(self.x[i].astype(np.float32) / 255.0).unsqueeze(0)
        return (img - 0.2860) / 0.3530, int(self.y[i])


loader = torch.utils.data.DataLoader(Fashion(), batch_size=64, shuffle=True, num_workers=0)
net = LeNet5()
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
t0 = time.perf_counter()
for xb, yb in loader:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(net(xb), yb).backward()
    opt.step()
print("epoch lenet torch %.3f" % ((time.perf_counter() - t0) * 1e3), flush=True)
