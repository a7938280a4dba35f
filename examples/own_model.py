"""Your own CNN, protected by FG-AdaHAT, in a plain PyTorch loop on the 8x8 digits (5 tasks)."""

import torch
import torch.nn.functional as F
from torch import nn

import hatcl
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.data.base import DataConfig, build_continual_data

torch.manual_seed(0)  # the network's initial weights: the same output every time
net = nn.Sequential(  # any network: hatcl.wrap finds and masks its Linear/Conv layers
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(),
)
tasks = build_continual_data(DataConfig(source="digits", scenario="split"), seed=0).tasks
algorithm = FGAdaHAT()  # the reference preset, as `hatcl run algorithm=fgadahat`
learner = hatcl.Learner(backbone=hatcl.wrap(net, tasks[0].train.x[:2]), algorithm=algorithm)
for task in tasks:
    batches = list(zip(task.train.x.split(32), task.train.y.split(32)))
    learner.start_task(task.task_id, num_classes=task.num_classes, num_batches=len(batches))
    optimizer = torch.optim.Adam(learner.trainable_parameters(), lr=1e-3)
    learner.train()
    for _epoch in range(10):
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
