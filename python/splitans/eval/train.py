"""Seeded training of the Fashion-MNIST families (`splitans train-fmnist`).

The evaluation reads the committed checkpoints (``benches/checkpoints/fmnist``) and never trains;
this module is how they were made, and how to remake them.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from .fmnist import build, load_data

__all__ = ["train"]


def train(family: str, epochs: int = 4, seed: int = 0, batch: int = 128, lr: float = 3e-3,
          log: Optional[Callable[[str], None]] = print):
    """Train a `family` model on the 55,000 training images: AdamW, one-cycle learning rate,
    `seed` for initialization and shuffling. Returns the model in eval mode."""
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    x, y = load_data("train")
    model = build(family).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05 if family == "swin" else 5e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            xb, yb = x[idx], y[idx]
            if family != "vgg":  # random horizontal flips (every model but the VGG, which overfits less)
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            out = model(xb)
            loss = torch.nn.functional.cross_entropy(out, yb, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            total += len(idx)
        if log:
            log(f"{family} epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, "
                f"train accuracy {correct / total:.4f}, {time.time() - t0:.0f} s")
    return model.eval()
