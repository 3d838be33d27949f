"""MNIST for MPLP, read from local IDX files and prepared as in the reference protocol.

The reference runs use the MNIST *test* file: images 0..7999 feed the inner loop and images
8000..9999 are held out. Each image is scaled to [0, 1], resized to 12x12 with TensorFlow 2's
bilinear sampling, standardized with one scalar mean and std of the training part, and flattened
to 144 features; labels become one-hot rows.

This module never downloads anything: the user names the directory that holds the files. It only
makes float32 numpy arrays and knows nothing about graphs, learners or engines.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphflow.errors import DataError, DataFileNotFoundError
from graphflow.io.reading import read_failure

N_CLASSES = 10

__all__ = [
    "N_CLASSES",
    "read_idx",
    "write_idx",
    "load_mnist",
    "resize_bilinear",
    "MnistTaskData",
    "prepare_mnist",
    "mnist_batches",
    "mnist_heldout",
    "mnist_meta_batch",
    "load_mnist_task",
]

# IDX type codes (third byte of the magic number); all values are stored big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_SPLITS = ("t10k", "train")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    The header is two zero bytes, a type code (``0x08`` unsigned byte, ``0x09`` signed byte,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of
    dimensions, then each dimension as a big-endian uint32; the values follow, big-endian.
    Compression is detected from the gzip magic bytes ``1f 8b``, not from the file name.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to read.

    Returns
    -------
    numpy.ndarray
        The array, in native byte order.

    Raises
    ------
    ValueError
        If the file is not IDX (bad magic or type code), or is truncated or too long.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "digits-idx1-ubyte"
    >>> _ = path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise DataFileNotFoundError(read_failure(path, "file", error)) from None
    except OSError as error:
        raise DataError(read_failure(path, "file", error)) from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: corrupt or truncated gzip data ({error})") from error
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file: magic number {raw[:4].hex(' ') or '(empty)'}, expected "
            f"00 00 <type code, one of {', '.join(f'{c:02x}' for c in _IDX_DTYPES)}> <ndim>"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header: {len(raw)} bytes, expected {header_size}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected_size = header_size + math.prod(shape) * dtype.itemsize
    if len(raw) != expected_size:
        problem = "truncated" if len(raw) < expected_size else "trailing data in"
        raise DataError(
            f"{path}: {problem} IDX file: {len(raw)} bytes, expected {expected_size} "
            f"for shape {shape} of {dtype.newbyteorder('=')}"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    The inverse of :func:`read_idx`, for making small fixture files.

    Parameters
    ----------
    path : str or pathlib.Path
        Where to write.
    array : numpy.ndarray
        Values of a dtype IDX supports (uint8, int8, int16, int32, float32, float64).

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile
    >>> path = write_idx(Path(tempfile.mkdtemp()) / "x-idx2-ubyte.gz", np.eye(2, dtype=np.uint8))
    >>> read_idx(path)
    array([[1, 0],
           [0, 1]], dtype=uint8)
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    if array.dtype not in codes:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; use one of {list(codes)}")
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def _find_idx_file(directory: Path, stem: str) -> Path:
    candidates = [directory / stem, directory / f"{stem}.gz"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    names = " or ".join(c.name for c in candidates)
    raise DataFileNotFoundError(f"{directory}: no MNIST file found; looked for {names}")


def load_mnist(directory: str | Path, split: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST images and labels from the IDX files in ``directory``.

    Looks for ``{split}-images-idx3-ubyte`` and ``{split}-labels-idx1-ubyte``, each plain or with
    a ``.gz`` suffix. Nothing is ever downloaded.

    Parameters
    ----------
    directory : str or pathlib.Path
        The directory that holds the files.
    split : {"t10k", "train"}, default "t10k"
        Which file pair to read; the reference protocol uses the test set ``"t10k"``.

    Returns
    -------
    images : numpy.ndarray
        uint8, ``[n, 28, 28]``.
    labels : numpy.ndarray
        int64, ``[n]``.

    Raises
    ------
    FileNotFoundError
        If the directory or a file is missing; the message lists the names looked for.
    ValueError
        If ``split`` is unknown or the files do not hold matching images and labels.

    Examples
    --------
    >>> import tempfile
    >>> directory = Path(tempfile.mkdtemp())
    >>> _ = write_idx(directory / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    >>> _ = write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.array([3, 9], np.uint8))
    >>> images, labels = load_mnist(directory)
    >>> images.shape, labels
    ((2, 28, 28), array([3, 9]))
    """
    if split not in _SPLITS:
        raise DataError(f"unknown MNIST split {split!r}; expected one of {_SPLITS}")
    directory = Path(directory)
    if not directory.is_dir():
        raise DataFileNotFoundError(f"{directory}: MNIST directory does not exist")
    images_path = _find_idx_file(directory, f"{split}-images-idx3-ubyte")
    labels_path = _find_idx_file(directory, f"{split}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(
            f"{images_path}: expected uint8 images [n, rows, cols], got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise DataError(
            f"{labels_path}: expected {images.shape[0]} uint8 labels to match {images_path.name}, "
            f"got {labels.dtype} {labels.shape}"
        )
    return images, labels.astype(np.int64)


def _bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``[out_size, in_size]`` weights of 1-D linear interpolation with half-pixel centers."""
    source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    source = np.clip(source, 0, in_size - 1)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    upper_weight = source - lower
    weights = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(weights, (rows, lower), 1 - upper_weight)
    np.add.at(weights, (rows, upper), upper_weight)
    return weights


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``[n, H, W]`` images to ``[n, size, size]`` by bilinear interpolation.

    Matches TensorFlow 2's ``tf.image.resize(images, (size, size), method="bilinear",
    antialias=False)`` (``align_corners=False, half_pixel_centers=True``): output pixel ``d``
    samples the input at ``s = (d + 0.5) * in_size / size - 0.5``, clamped to
    ``[0, in_size - 1]``, and linearly interpolates its two neighbours ``floor(s)`` and
    ``floor(s) + 1``; rows and columns are done separately. No antialiasing, so downscaling
    reads only the two nearest input pixels per axis. Computed in float64, returned as float32.

    Parameters
    ----------
    images : numpy.ndarray
        ``[n, H, W]`` real-valued images.
    size : int
        Output height and width.

    Returns
    -------
    numpy.ndarray
        float32, ``[n, size, size]``.

    Examples
    --------
    >>> image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> resize_bilinear(image, 2)
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise DataError(f"resize_bilinear: expected images [n, H, W], got shape {images.shape}")
    if size < 1:
        raise DataError(f"resize_bilinear: size must be positive, got {size}")
    rows = _bilinear_matrix(images.shape[1], size)
    cols = _bilinear_matrix(images.shape[2], size)
    return np.einsum("oh,nhw,pw->nop", rows, images, cols, optimize=True).astype(np.float32)


@dataclass(frozen=True, eq=False)
class MnistTaskData:
    """MNIST prepared for MPLP: standardized, flattened images and one-hot labels.

    Attributes
    ----------
    train_x, train_y : numpy.ndarray
        float32 ``[n_train, size * size]`` and ``[n_train, 10]``: the inner-loop training part.
    test_x, test_y : numpy.ndarray
        float32 ``[n - n_train, size * size]`` and ``[n - n_train, 10]``: the held-out part.
    mean, std : float
        The scalar standardization of the resized training pixels, applied to both parts.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    mean: float
    std: float


def prepare_mnist(
    images: np.ndarray, labels: np.ndarray, size: int = 12, n_train: int = 8000
) -> MnistTaskData:
    """Prepare MNIST as the reference protocol does.

    Images ``[0, n_train)`` form the training part and the rest the held-out part. Pixels are
    divided by 255, resized to ``size x size`` with :func:`resize_bilinear`, standardized with the
    scalar mean and (population) std over all training pixels, and flattened. Labels become
    one-hot float32 rows.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 ``[n, H, W]``, as returned by :func:`load_mnist`.
    labels : numpy.ndarray
        Integer labels in ``0..9``, ``[n]``.
    size : int, default 12
        Side of the resized images.
    n_train : int, default 8000
        How many leading images form the training part.

    Returns
    -------
    MnistTaskData

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8)
    >>> data = prepare_mnist(images, np.arange(10), n_train=8)
    >>> data.train_x.shape, data.test_y.shape, round(float(data.train_x.mean()), 6)
    ((8, 144), (2, 10), 0.0)
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3:
        raise DataError(f"prepare_mnist: expected images [n, H, W], got shape {images.shape}")
    if labels.shape != images.shape[:1]:
        raise DataError(
            f"prepare_mnist: labels shape {labels.shape} does not match {images.shape[0]} images"
        )
    if not 0 < n_train < len(images):
        raise DataError(f"prepare_mnist: n_train={n_train} must be in 1..{len(images) - 1}")
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise DataError(f"prepare_mnist: labels must lie in 0..{N_CLASSES - 1}")
    resized = resize_bilinear(images.astype(np.float32) / 255.0, size).reshape(len(images), -1)
    mean, std = float(resized[:n_train].mean()), float(resized[:n_train].std())
    if std == 0.0:
        raise DataError("prepare_mnist: training images are constant; cannot standardize")
    features = ((resized - mean) / std).astype(np.float32)
    one_hot = np.eye(N_CLASSES, dtype=np.float32)[labels]
    return MnistTaskData(
        train_x=features[:n_train],
        train_y=one_hot[:n_train],
        test_x=features[n_train:],
        test_y=one_hot[n_train:],
        mean=mean,
        std=std,
    )


def _training_draws(data: MnistTaskData, rng: np.random.Generator, shape: tuple[int, ...]):
    """Training images and labels at ``rng.integers(0, n_train, size=shape)`` (with replacement)."""
    index = rng.integers(0, len(data.train_x), size=shape)
    return data.train_x[index], data.train_y[index]


def mnist_batches(
    data: MnistTaskData, rng: np.random.Generator, steps: int, batch: int, tasks: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Inner-loop data: ``steps`` batches of training images drawn uniformly at random.

    Every image is an independent draw with replacement, so an image may repeat within a batch
    and across steps (and tasks).

    Parameters
    ----------
    data : MnistTaskData
        Prepared data; only its training part is used.
    rng : numpy.random.Generator
        Source of randomness: one ``rng.integers`` draw of all the indices.
    steps : int
        Number of inner-loop steps.
    batch : int
        Images per step.
    tasks : int, optional
        Number of tasks learning side by side (a task axis after the steps axis).

    Returns
    -------
    x : numpy.ndarray
        float32 ``[steps, batch, features]``, or ``[steps, tasks, batch, features]``.
    y : numpy.ndarray
        float32 one-hot ``[steps, batch, 10]``, or ``[steps, tasks, batch, 10]``.

    Examples
    --------
    >>> images = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    >>> data = prepare_mnist(images, np.arange(10), n_train=8)
    >>> x, y = mnist_batches(data, np.random.default_rng(1), steps=20, batch=8)
    >>> x.shape, y.shape
    ((20, 8, 144), (20, 8, 10))
    >>> mnist_batches(data, np.random.default_rng(1), steps=20, batch=8, tasks=3)[0].shape
    (20, 3, 8, 144)
    """
    return _training_draws(data, rng, (steps, batch) if tasks is None else (steps, tasks, batch))


def mnist_heldout(
    data: MnistTaskData, rng: np.random.Generator, n: int = 100, tasks: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct held-out images, chosen uniformly at random from the test part.

    Parameters
    ----------
    data : MnistTaskData
        Prepared data; only its held-out part is used.
    rng : numpy.random.Generator
        Source of randomness: one ``rng.choice`` without replacement per task.
    n : int, default 100
        Number of images, at most the size of the held-out part.
    tasks : int, optional
        Number of tasks, each with its own ``n`` distinct images (a leading task axis).

    Returns
    -------
    x : numpy.ndarray
        float32 ``[n, features]``, or ``[tasks, n, features]``.
    y : numpy.ndarray
        float32 one-hot ``[n, 10]``, or ``[tasks, n, 10]``.

    Examples
    --------
    >>> images = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    >>> data = prepare_mnist(images, np.arange(10), n_train=6)
    >>> x, y = mnist_heldout(data, np.random.default_rng(1), n=3)
    >>> x.shape, y.shape
    ((3, 144), (3, 10))
    >>> mnist_heldout(data, np.random.default_rng(1), n=3, tasks=2)[1].shape
    (2, 3, 10)
    """
    if n > len(data.test_x):
        raise DataError(f"mnist_heldout: n={n} exceeds the {len(data.test_x)} held-out images")
    if tasks is None:
        index = rng.choice(len(data.test_x), size=n, replace=False)
    else:
        index = np.stack([rng.choice(len(data.test_x), size=n, replace=False) for _ in range(tasks)])
    return data.test_x[index], data.test_y[index]


def mnist_meta_batch(
    data: MnistTaskData, rng: np.random.Generator, tasks: int, steps: int, shots: int, heldout: int
) -> dict[str, np.ndarray]:
    """An outer (meta-training) batch of ``tasks`` tasks, the MNIST counterpart of
    :func:`~graphflow.tasks.sample_sinusoid_meta_batch`.

    Meta-training never sees the held-out part of :class:`MnistTaskData` (that is for evaluation):
    the inner-loop images and the meta-loss's held-out images are both drawn, with replacement,
    from the training part. Two ``rng.integers`` draws, in this order: the inner-loop indices
    ``[tasks, steps, shots]``, then the held-out indices ``[tasks, heldout]``.

    Parameters
    ----------
    data : MnistTaskData
        Prepared data; only its training part is used.
    rng : numpy.random.Generator
        Source of randomness.
    tasks : int
        Number of tasks ``T``.
    steps : int
        Inner-loop steps per task.
    shots : int
        Images per inner-loop batch.
    heldout : int
        Images per task for the meta-loss after the last step.

    Returns
    -------
    dict of str to numpy.ndarray
        float32 ``x`` ``[T, steps, shots, features]``, ``y`` ``[T, steps, shots, 10]``, ``xe``
        ``[T, heldout, features]`` and ``ye`` ``[T, heldout, 10]``.

    Examples
    --------
    >>> images = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    >>> data = prepare_mnist(images, np.arange(10), n_train=8)
    >>> batch = mnist_meta_batch(data, np.random.default_rng(1), tasks=2, steps=3, shots=4, heldout=5)
    >>> {k: v.shape for k, v in batch.items()}
    {'x': (2, 3, 4, 144), 'y': (2, 3, 4, 10), 'xe': (2, 5, 144), 'ye': (2, 5, 10)}
    """
    x, y = _training_draws(data, rng, (tasks, steps, shots))
    xe, ye = _training_draws(data, rng, (tasks, heldout))
    return {"x": x, "y": y, "xe": xe, "ye": ye}


MIN_HELDOUT = 100
"""Held-out images an evaluation draws (distinct) after the training part."""


def load_mnist_task(directory: str | Path, size: int = 12, n_train: int = 8000) -> MnistTaskData:
    """The prepared MNIST task data of the IDX files in ``directory`` (:func:`load_mnist`, then
    :func:`prepare_mnist`); every problem is a :class:`~graphflow.errors.DataError` naming the folder.

    The folder must hold at least ``n_train + MIN_HELDOUT`` images.
    """
    images, labels = load_mnist(directory)
    if len(images) < n_train + MIN_HELDOUT:
        raise DataError(f"{directory}: {len(images)} MNIST images; the task needs at least {n_train + MIN_HELDOUT} "
                        f"({n_train} for the inner steps, {MIN_HELDOUT} held out)")
    try:
        return prepare_mnist(images, labels, size=size, n_train=n_train)
    except DataError as err:
        raise DataError(f"{directory}: {err}") from None
