"""Reference trajectories for tests/unit/test_optim.c: each optimizer of
torch.optim (LAMB: a NumPy transcription of You et al. 2019, Algorithm 2,
with bias correction) takes 10 steps on two float64 parameters with the
gradient g(p) = 2 (p - target) + 0.5 sin(p). Written as an .npz archive:
<config>.<param> holds the parameters after each step, shape (10, ...)."""
import os
import sys

import numpy as np
import torch

out = sys.argv[1]
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
rng = np.random.default_rng(0)
p0 = [rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (5,))]
targets = [rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (5,))]
np_refs = {"p0.0": p0[0], "p0.1": p0[1], "target.0": targets[0], "target.1": targets[1]}

configs = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.01),
    "momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "momentum_damp": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.3),
    "nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
    "adam_wd": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01),
    "rmsprop_cm": lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.5, centered=True,
                                                  weight_decay=0.01),
    "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                              initial_accumulator_value=0.1),
}

def grad_of(p, t):
    return 2 * (p - t) + 0.5 * torch.sin(p)

for name, make in configs.items():
    ps = [torch.tensor(a, dtype=torch.float64, requires_grad=False) for a in p0]
    ts = [torch.tensor(a, dtype=torch.float64) for a in targets]
    opt = make(ps)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5) if name == "sgd" else None
    traj = [[], []]
    for step in range(10):
        for p, t in zip(ps, ts):
            p.grad = grad_of(p.detach(), t)
        opt.step()
        if sched:
            sched.step()
        for k, p in enumerate(ps):
            traj[k].append(p.detach().numpy().copy())
    for k in range(2):
        np_refs["%s.%d" % (name, k)] = np.stack(traj[k])

# LAMB in NumPy
lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-6, 0.01
ps = [a.copy() for a in p0]
ms = [np.zeros_like(a) for a in p0]
vs = [np.zeros_like(a) for a in p0]
traj = [[], []]
for step in range(1, 11):
    for k in range(2):
        g = 2 * (ps[k] - targets[k]) + 0.5 * np.sin(ps[k])
        ms[k] = b1 * ms[k] + (1 - b1) * g
        vs[k] = b2 * vs[k] + (1 - b2) * g * g
        u = (ms[k] / (1 - b1 ** step)) / (np.sqrt(vs[k] / (1 - b2 ** step)) + eps) + wd * ps[k]
        r1, r2 = np.linalg.norm(ps[k]), np.linalg.norm(u)
        trust = r1 / r2 if r1 > 0 and r2 > 0 else 1.0
        ps[k] = ps[k] - lr * trust * u
        traj[k].append(ps[k].copy())
for k in range(2):
    np_refs["lamb.%d" % k] = np.stack(traj[k])

# clip_grad_norm_
gs = [torch.tensor(a * 10) for a in p0]
total = torch.nn.utils.clip_grad_norm_([torch.nn.Parameter(torch.zeros_like(g)) for g in gs], 1.0)
params = [torch.nn.Parameter(torch.zeros_like(g)) for g in gs]
for p, g in zip(params, gs):
    p.grad = g.clone()
total = torch.nn.utils.clip_grad_norm_(params, 1.0)
np_refs["clip.norm"] = np.array(float(total))
np_refs["clip.0"] = params[0].grad.numpy()
np_refs["clip.1"] = params[1].grad.numpy()
np.savez(out, **np_refs)
