"""Train one model with deepgen's Python API, under torchrun or as one plain process.

    [torchrun --nproc_per_node N] train_distributed.py FAMILY OUT IMAGES [--float64] [--resume]

Used by tests/test_distributed.py: the same script run by 2 processes and by 1 must end
with the same weights.
"""

import sys

import torch

import deepgen
from deepgen import distributed
from deepgen.config import DataConfig, RunConfig, TrainConfig

family, out, images = sys.argv[1], sys.argv[2], int(sys.argv[3])
if "--float64" in sys.argv:
    torch.set_default_dtype(torch.float64)  # so float rounding cannot hide a wrong result
distributed.init_from_env()
try:
    mnist = deepgen.load_dataset("mnist")["train"]  # 2,000 images keep the evaluations short
    data = deepgen.data.from_tensors(mnist.x[:2000], mnist.labels[:2000], name="mnist-2000")
    if "--resume" in sys.argv:
        deepgen.resume(out, progress=False, data=data, images=images)
    else:
        config = RunConfig(
            family=family,
            model={},
            data=DataConfig(name="mnist"),
            train=TrainConfig(images=images, batch_size=32, seed=3, log_every=1),
        )
        deepgen.train(config, out, progress=False, data=data)
finally:
    distributed.shutdown()
