"""How low a HAT loop step can go on CPU in eager mode: a floor for the ratio targets.

Measures, side by side in one process (MLP 784-256-100-64, batch 128, fused Adam, one thread):
- plain: a plain PyTorch step without masks (the reference of ``loop_overhead.py``);
- hand HAT: a HAT step written directly in plain PyTorch without hatcl's abstractions (not
  proven minimal; hatcl's own step was at most 7 % slower and once faster): the masks
  ``sigmoid(s e_l)`` multiplied into each layer's output, cross-entropy plus the sparsity term
  over the free units, backward, one ``_foreach_mul_`` of every protected gradient by its
  per-task constant ``1 - min(a_l, a_{l-1})`` (computed once, before the steps), the
  embedding-gradient compensation in ``_foreach`` ops over all layers (``s e`` clamped to +-50
  before ``cosh``), the fused Adam step, the embedding clamp;
- Lightning plain loop: the plain step inside a Lightning manual-optimisation loop (timed
  between batch starts, like hatcl's loop in ``loop_overhead.py``): what the engine alone adds;
- hatcl bare HAT step and hatcl loop step (``loop_overhead.py``'s functions).

The engine's cost is a fixed time per step (its loop, hooks and optimizer wrapper), so the floor
of hatcl's loop / plain ratio with Lightning as the engine is
(the faster of hand HAT and hatcl bare HAT + Lightning plain loop - plain) / plain; what hatcl's
loop adds beyond Lightning's own per-step time is printed too.

    python benchmarks/step_floor.py [--steps 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from loop_overhead import bare_step_times, loop_step_times, times_between_batches

BATCH = 128
DIMS = (784, 256, 100, 64)
S_MAX, CLAMP, COSH_CLAMP, C = 400.0, 6.0, 50.0, 0.75


def batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(steps * BATCH, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (steps * BATCH,), generator=generator)
    return list(zip(x.split(BATCH), y.split(BATCH)))


def plain_network() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in zip(DIMS[:-1], DIMS[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(DIMS[-1], 10))


def plain_times(steps: int) -> list[float]:
    model = plain_network()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    times = []
    for inputs, targets in batches(steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times


class HandHAT(nn.Module):
    """A HAT MLP written by hand: linear layers, one embedding per layer, one head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(DIMS[:-1], DIMS[1:]))
        self.embeddings = nn.ParameterList(nn.Parameter(torch.randn(o)) for o in DIMS[1:])
        self.head = nn.Linear(DIMS[-1], 10)

    def forward(self, x: torch.Tensor, s: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
        masks = [torch.sigmoid(s * e) for e in self.embeddings]
        h = x.flatten(1)
        for layer, mask in zip(self.layers, masks):
            h = F.relu(layer(h)) * mask
        return self.head(h), masks


def protection() -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    """Per-task constants of task 2: the free units and each gradient's multiplier."""
    generator = torch.Generator().manual_seed(1)
    previous = [(torch.rand(o, generator=generator) > 0.5).float() for o in DIMS[1:]]
    free = [1 - a for a in previous]
    multipliers, upstream = [], torch.ones(DIMS[0])  # every input is in use
    for a in previous:  # layer by layer: weight (out x in), then bias
        multipliers += [1 - torch.minimum(a[:, None], upstream[None, :]), 1 - a]
        upstream = a
    return free, multipliers, float(sum(f.sum() for f in free))


def hand_hat_times(steps: int) -> list[float]:
    return run_hand_hat(steps)[0]


def run_hand_hat(steps: int) -> tuple[list[float], HandHAT, list[torch.Tensor]]:
    """The step times, the trained network and the gradient multipliers (weight, bias, ...)."""
    model = HandHAT()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    free, multipliers, total_free = protection()
    protected = [p for layer in model.layers for p in (layer.weight, layer.bias)]
    embeddings = list(model.embeddings)
    times = []
    for b, (inputs, targets) in enumerate(batches(steps)):
        started = time.perf_counter()
        s = 1 / S_MAX + (S_MAX - 1 / S_MAX) * b / max(steps - 1, 1)
        optimizer.zero_grad(set_to_none=True)
        logits, masks = model(inputs, s)
        sparsity = sum((m * f).sum() for m, f in zip(masks, free)) / total_free
        (F.cross_entropy(logits, targets) + C * sparsity).backward()
        torch._foreach_mul_([p.grad for p in protected], multipliers)
        with torch.no_grad():
            numerator = torch._foreach_mul(embeddings, s)
            denominator = torch._foreach_mul(embeddings, S_MAX)
            for products in (numerator, denominator):  # cosh stays finite
                torch._foreach_clamp_min_(products, -COSH_CLAMP)
                torch._foreach_clamp_max_(products, COSH_CLAMP)
            torch._foreach_cosh_(numerator)
            torch._foreach_cosh_(denominator)
            torch._foreach_add_(numerator, 1.0)
            torch._foreach_add_(denominator, 1.0)
            torch._foreach_div_(numerator, denominator)
            torch._foreach_mul_(numerator, S_MAX / s)
            torch._foreach_mul_([e.grad for e in embeddings], numerator)
        optimizer.step()
        with torch.no_grad():
            torch._foreach_clamp_min_(embeddings, -CLAMP)
            torch._foreach_clamp_max_(embeddings, CLAMP)
        times.append(time.perf_counter() - started)
    return times, model, multipliers


class PlainLoopModule(L.LightningModule):
    """The plain step in Lightning's manual-optimisation loop."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.network = plain_network()

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.network(inputs), targets)
        self.manual_backward(loss)
        optimizer.step()
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3, fused=True)


class Batches:
    """The batches as one iterable loader (Lightning reads a plain list as many loaders)."""

    def __init__(self, steps: int) -> None:
        self.items = batches(steps)

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def lightning_plain_times(steps: int) -> list[float]:
    return times_between_batches(PlainLoopModule(), Batches(steps))


MEASURES = {
    "plain": plain_times,
    "hand HAT": hand_hat_times,
    "Lightning plain loop": lightning_plain_times,
    "hatcl bare HAT": bare_step_times,
    "hatcl loop": loop_step_times,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    medians: dict[str, list[float]] = {name: [] for name in MEASURES}
    for _ in range(args.repeats):  # interleaved: every measure sees the same machine load
        for name, measure in MEASURES.items():
            medians[name].append(statistics.median(measure(args.steps)[10:]))
    # the best repeat's median: a shared machine only ever adds time
    ms = {name: 1e3 * min(values) for name, values in medians.items()}
    plain = ms["plain"]
    print(
        f"MLP 784-256-100-64, batch {BATCH}, fused Adam, one thread, {args.steps} steps; "
        f"best of {args.repeats} repeats' medians"
    )
    for name, value in ms.items():
        print(f"  {name:<22} {value:6.2f} ms   {value / plain:5.2f}x plain")
    engine = ms["Lightning plain loop"] - plain
    fastest_hat = min(ms["hand HAT"], ms["hatcl bare HAT"])
    floor = (fastest_hat + engine) / plain
    print(f"floor of loop / plain with Lightning: {floor:.2f} (target 1.6)")
    print(f"hatcl bare HAT / hand HAT: {ms['hatcl bare HAT'] / ms['hand HAT']:.2f}")
    beyond = ms["hatcl loop"] - ms["hatcl bare HAT"] - engine
    print(f"Lightning's own time per step {engine:.2f} ms; hatcl's loop adds {beyond:.2f} ms more")


if __name__ == "__main__":
    main()
