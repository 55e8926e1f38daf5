"""PyTorch's side of bench/run_data.sh: the Fashion-MNIST pipeline of
bench_data.c with torch.utils.data (torchvision is not needed):

    uint8 images in memory -> Dataset.__getitem__: pad 2 + random 28x28
    crop, random horizontal flip (p = 0.5), /255 to float [1,28,28],
    normalize (0.2860, 0.3530) -> DataLoader(batch_size=64, shuffle=True,
    num_workers=W, drop_last=False, persistent_workers=W > 0)

One warm-up epoch, then --epochs timed epochs; the median is reported.
Every process uses one intra-op thread (torch.set_num_threads(1)), as a
DataLoader worker does by default.

    /usr/bin/python3 bench/torch_data.py [--dir DIR] [--workers 0,1,2] [--epochs N]

Output lines: "meta KEY VALUE", "result torch_wW IMAGES_PER_S EPOCH_SECONDS".
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


class FashionTrain(Dataset):
    def __init__(self, images, labels):
        self.images = torch.from_numpy(images.copy())  # uint8 [N,28,28]
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, i):
        img = F.pad(self.images[i].unsqueeze(0), (2, 2, 2, 2))  # uint8 [1,32,32], zeros
        top = int(torch.randint(0, 5, (1,)))
        left = int(torch.randint(0, 5, (1,)))
        img = img[:, top : top + 28, left : left + 28]
        if float(torch.rand(1)) < 0.5:
            img = img.flip(-1)
        x = img.float().div_(255.0)
        x = x.sub_(MEAN).div_(STD)
        return x, self.labels[i]


def worker_init(_):
    torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    t0 = time.perf_counter()
    images = read_idx(os.path.join(args.dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.dir, "train-labels-idx1-ubyte.gz"))
    print("meta load_s %.3f" % (time.perf_counter() - t0))
    print("meta torch %s" % torch.__version__)
    ds = FashionTrain(images, labels)
    n = len(ds)
    for w in [int(x) for x in args.workers.split(",")]:
        dl = DataLoader(
            ds,
            batch_size=64,
            shuffle=True,
            num_workers=w,
            drop_last=False,
            persistent_workers=w > 0,
            worker_init_fn=worker_init if w > 0 else None,
        )
        times = []
        for e in range(args.epochs + 1):
            ts = time.perf_counter()
            seen = 0
            checksum = 0.0
            for x, y in dl:
                checksum += float(x[:, 0, 14, 8].sum())
                seen += x.shape[0]
            assert seen == n, seen
            if e > 0:
                times.append(time.perf_counter() - ts)
        times.sort()
        med = times[len(times) // 2]
        print("result torch_w%d %.0f %.4f" % (w, n / med, med), flush=True)
        del dl


if __name__ == "__main__":
    main()
