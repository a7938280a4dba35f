"""A small ViT of your own, protected by FG-AdaHAT, in a plain PyTorch loop on the 8x8 digits.

Layer norms, the class token and the positional embedding cannot be masked: each task gets its
own copy of them (``unmasked="per_task"``); every Linear (q, k, v split from the fused qkv) and
the patch-embedding conv get HAT masks.
"""

import torch
import torch.nn.functional as F
from torch import nn

import hatcl
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.data.base import DataConfig, build_continual_data


class Block(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads, self.norm1, self.norm2 = heads, nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.embed = nn.Conv2d(1, dim, 2, stride=2)  # 16 patches of 2x2 pixels
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, 17, dim))
        self.blocks, self.norm = nn.Sequential(Block(dim)), nn.LayerNorm(dim)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.norm(self.blocks(x))[:, 0]


torch.manual_seed(0)
tasks = build_continual_data(DataConfig(source="digits", scenario="split"), seed=0).tasks
backbone = hatcl.wrap(ViT(), tasks[0].train.x[:2], unmasked="per_task")
algorithm = FGAdaHAT(importance_type="gradient_x_activation_abs")
learner = hatcl.Learner(backbone=backbone, algorithm=algorithm)
for task in tasks:
    batches = list(zip(task.train.x.split(32), task.train.y.split(32)))
    learner.start_task(task.task_id, num_classes=task.num_classes, num_batches=len(batches))
    optimizer = torch.optim.Adam(learner.trainable_parameters(), lr=5e-3)
    learner.train()
    for _epoch in range(5):
        for x, y in batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(learner(x, y), y) + learner.penalty()
            loss.backward()
            learner.before_optimizer_step()
            optimizer.step()
            learner.after_optimizer_step()
    learner.end_task()
    learner.eval()
    with torch.no_grad():
        accuracy = [(learner.predict(t.test.x, task_id=t.task_id).argmax(1) == t.test.y)
                    .float().mean().item() for t in tasks[: task.task_id]]
    print(f"after task {task.task_id}: " + " ".join(f"{a:.3f}" for a in accuracy))
