"""Task datasets for inner-loop learning and meta-training: sinusoid regression and MNIST.

Tasks only produce float32 numpy arrays. They never download anything (MNIST is read from IDX
files the user names) and know nothing about graphs, learners or engines.

>>> from graphflow.tasks import SinusoidTask, sinusoid_eval_points
>>> x, y = sinusoid_eval_points(SinusoidTask(amplitude=0.3, phase=0.0))
>>> x.shape, y.dtype
((100, 1), dtype('float32'))
"""

from .mnist import (
    MnistTaskData,
    load_mnist,
    load_mnist_task,
    mnist_batches,
    mnist_heldout,
    mnist_meta_batch,
    prepare_mnist,
    read_idx,
    resize_bilinear,
    write_idx,
)
from .sinusoid import (
    SinusoidTask,
    sample_sinusoid_meta_batch,
    sample_sinusoid_tasks,
    sinusoid_batches,
    sinusoid_eval_points,
)

__all__ = [
    "MnistTaskData",
    "SinusoidTask",
    "load_mnist",
    "load_mnist_task",
    "mnist_batches",
    "mnist_heldout",
    "mnist_meta_batch",
    "prepare_mnist",
    "read_idx",
    "resize_bilinear",
    "sample_sinusoid_meta_batch",
    "sample_sinusoid_tasks",
    "sinusoid_batches",
    "sinusoid_eval_points",
    "write_idx",
]
