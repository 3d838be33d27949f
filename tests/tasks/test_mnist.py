import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from graphflow.tasks.mnist import (
    MnistTaskData,
    load_mnist,
    mnist_batches,
    mnist_heldout,
    mnist_meta_batch,
    prepare_mnist,
    read_idx,
    resize_bilinear,
    write_idx,
)

REAL_MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


def idx_bytes(type_code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file written by hand, independently of ``write_idx``."""
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def synthetic_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, np.arange(n) % 10


# --- IDX files -------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_reads_handwritten_files(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(0x08, images.shape, images.tobytes())
    # No .gz suffix: compression must be detected from the magic bytes.
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    np.testing.assert_array_equal(read_idx(path), images)


def test_read_idx_decodes_big_endian_values(tmp_path):
    path = tmp_path / "values-idx1-int"
    path.write_bytes(idx_bytes(0x0C, (3,), struct.pack(">3i", 1, -2, 70000)))
    values = read_idx(path)
    np.testing.assert_array_equal(values, [1, -2, 70000])
    assert values.dtype == np.int32 and values.dtype.isnative


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.uint8).reshape(3, 4),
        np.array([-3, 4], dtype=np.int16),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
        np.array([[0.5]], dtype=np.float64),
    ],
)
@pytest.mark.parametrize("name", ["data-idx", "data-idx.gz"])
def test_write_then_read_round_trips(tmp_path, array, name):
    back = read_idx(write_idx(tmp_path / name, array))
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_read_idx_rejects_bad_magic_naming_the_file(tmp_path):
    path = tmp_path / "not-idx.bin"
    path.write_bytes(b"PK\x03\x04 some zip file")
    with pytest.raises(ValueError, match="not-idx.bin.*not an IDX file"):
        read_idx(path)


def test_read_idx_rejects_truncated_data_naming_the_file(tmp_path):
    path = tmp_path / "short-idx1-ubyte"
    path.write_bytes(idx_bytes(0x08, (10,), bytes(4)))
    with pytest.raises(ValueError, match="short-idx1-ubyte.*truncated"):
        read_idx(path)


def test_read_idx_rejects_truncated_header_and_gzip(tmp_path):
    header = tmp_path / "header-only"
    header.write_bytes(bytes([0, 0, 0x08, 3, 0, 0]))
    with pytest.raises(ValueError, match="header-only.*truncated IDX header"):
        read_idx(header)
    cut_gzip = tmp_path / "cut.gz"
    cut_gzip.write_bytes(gzip.compress(idx_bytes(0x08, (100,), bytes(100)))[:20])
    with pytest.raises(ValueError, match="cut.gz.*gzip"):
        read_idx(cut_gzip)


# --- load_mnist --------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["t10k", "train"])
def test_load_mnist_finds_plain_and_gzipped_files(tmp_path, split):
    images, labels = synthetic_mnist(5)
    write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels.astype(np.uint8))
    loaded_images, loaded_labels = load_mnist(tmp_path, split=split)
    assert loaded_images.dtype == np.uint8
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_load_mnist_missing_file_lists_the_names_it_looked_for(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", synthetic_mnist(2)[0])
    with pytest.raises(FileNotFoundError) as error:
        load_mnist(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    assert "t10k-labels-idx1-ubyte" in message and "t10k-labels-idx1-ubyte.gz" in message


def test_load_mnist_missing_directory_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, split="validation")


def test_load_mnist_rejects_mismatched_labels(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", synthetic_mnist(3)[0])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


# --- resize_bilinear ---------------------------------------------------------------------------


def half_pixel_source(out_size: int, in_size: int) -> np.ndarray:
    """Where each output pixel samples the input: TF2 bilinear, half-pixel centers, clamped."""
    return np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)


def test_resize_keeps_a_constant_image_constant():
    images = np.full((2, 28, 28), 0.37, dtype=np.float32)
    for size in (12, 5, 40):
        resized = resize_bilinear(images, size)
        assert resized.shape == (2, size, size) and resized.dtype == np.float32
        np.testing.assert_allclose(resized, 0.37, rtol=1e-6)


@pytest.mark.parametrize(("in_size", "out_size"), [(28, 12), (7, 3), (4, 10), (5, 8)])
def test_resize_of_a_ramp_samples_at_half_pixel_centers(in_size, out_size):
    # Linear interpolation reproduces a linear ramp exactly, so each output column must equal
    # the (clamped) source coordinate it samples.
    ramp_along_x = np.tile(np.arange(in_size, dtype=np.float32), (1, in_size, 1))
    expected_columns = half_pixel_source(out_size, in_size)
    resized = resize_bilinear(ramp_along_x, out_size)
    np.testing.assert_allclose(resized[0], np.tile(expected_columns, (out_size, 1)), atol=1e-5)
    ramp_along_y = ramp_along_x.transpose(0, 2, 1)
    np.testing.assert_allclose(
        resize_bilinear(ramp_along_y, out_size)[0], resized[0].T, atol=1e-5
    )


def test_resize_to_the_same_size_is_the_identity():
    images = np.random.default_rng(0).random((3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(resize_bilinear(images, 6), images)


def test_resize_4x4_to_2x2_by_hand():
    # Scale 2: output pixel d samples s = 2d + 0.5, halfway between input pixels 2d and 2d + 1,
    # so each output pixel is the mean of one 2x2 block.
    image = np.array(
        [[[1, 3, 0, 4], [5, 7, 8, 0], [2, 2, 9, 1], [6, 6, 3, 3]]], dtype=np.float32
    )
    expected = np.array([[[4.0, 3.0], [4.0, 4.0]]], dtype=np.float32)
    np.testing.assert_allclose(resize_bilinear(image, 2), expected, atol=1e-6)


def test_resize_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[n, H, W\]"):
        resize_bilinear(np.zeros((28, 28)), 12)


# --- prepare_mnist and batches -------------------------------------------------------------------


def test_prepare_mnist_shapes_and_standardization():
    images, labels = synthetic_mnist(50)
    data = prepare_mnist(images, labels, n_train=40)
    assert isinstance(data, MnistTaskData)
    assert data.train_x.shape == (40, 144) and data.train_y.shape == (40, 10)
    assert data.test_x.shape == (10, 144) and data.test_y.shape == (10, 10)
    for array in (data.train_x, data.train_y, data.test_x, data.test_y):
        assert array.dtype == np.float32
    assert data.train_x.mean() == pytest.approx(0.0, abs=1e-5)
    assert data.train_x.std() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(data.train_y.argmax(axis=1), labels[:40])
    np.testing.assert_array_equal(data.test_y.sum(axis=1), 1.0)
    # The held-out part uses the training statistics, not its own.
    resized_test = resize_bilinear(images[40:] / np.float32(255), 12).reshape(10, -1)
    np.testing.assert_allclose(
        data.test_x, (resized_test - data.mean) / data.std, rtol=1e-5, atol=1e-5
    )


def test_prepare_mnist_rejects_bad_inputs():
    images, labels = synthetic_mnist(10)
    with pytest.raises(ValueError, match="n_train"):
        prepare_mnist(images, labels, n_train=10)
    with pytest.raises(ValueError, match="labels"):
        prepare_mnist(images, labels[:5], n_train=8)
    with pytest.raises(ValueError, match="0..9"):
        prepare_mnist(images, labels + 5, n_train=8)


def test_batches_draw_training_rows_and_heldout_draws_distinct_test_rows():
    data = prepare_mnist(*synthetic_mnist(30), n_train=20)
    x, y = mnist_batches(data, np.random.default_rng(0), steps=20, batch=8)
    assert x.shape == (20, 8, 144) and y.shape == (20, 8, 10)
    train_rows = {row.tobytes(): label.tobytes() for row, label in zip(data.train_x, data.train_y)}
    assert all(train_rows[row.tobytes()] == label.tobytes()
               for row, label in zip(x.reshape(-1, 144), y.reshape(-1, 10)))
    again = mnist_batches(data, np.random.default_rng(0), steps=20, batch=8)
    np.testing.assert_array_equal(again[0], x)

    xe, ye = mnist_heldout(data, np.random.default_rng(0), n=10)
    assert xe.shape == (10, 144) and ye.shape == (10, 10)
    assert sorted(row.tobytes() for row in xe) == sorted(row.tobytes() for row in data.test_x)
    with pytest.raises(ValueError, match="held-out"):
        mnist_heldout(data, np.random.default_rng(0), n=11)


def test_batches_of_several_tasks_draw_one_block_of_indices_steps_first():
    data = prepare_mnist(*synthetic_mnist(30), n_train=20)
    x, y = mnist_batches(data, np.random.default_rng(3), steps=4, batch=5, tasks=3)
    index = np.random.default_rng(3).integers(0, 20, size=(4, 3, 5))
    np.testing.assert_array_equal(x, data.train_x[index])
    np.testing.assert_array_equal(y, data.train_y[index])


def test_heldout_of_several_tasks_draws_each_tasks_distinct_rows_in_turn():
    data = prepare_mnist(*synthetic_mnist(30), n_train=20)
    xe, ye = mnist_heldout(data, np.random.default_rng(4), n=6, tasks=3)
    rng = np.random.default_rng(4)
    index = np.stack([rng.choice(10, size=6, replace=False) for _ in range(3)])
    np.testing.assert_array_equal(xe, data.test_x[index])
    np.testing.assert_array_equal(ye, data.test_y[index])
    with pytest.raises(ValueError, match="held-out"):
        mnist_heldout(data, np.random.default_rng(0), n=11, tasks=2)


def test_meta_batch_draws_inner_then_heldout_indices_from_the_training_part():
    data = prepare_mnist(*synthetic_mnist(30), n_train=20)
    rng = np.random.default_rng(5)
    batch = mnist_meta_batch(data, rng, tasks=3, steps=4, shots=5, heldout=6)
    oracle = np.random.default_rng(5)  # the meta-trainer's draws, in its order
    idx = oracle.integers(0, 20, size=(3, 4, 5))
    held = oracle.integers(0, 20, size=(3, 6))
    for key, want in (("x", data.train_x[idx]), ("y", data.train_y[idx]), ("xe", data.train_x[held]),
                      ("ye", data.train_y[held])):
        np.testing.assert_array_equal(batch[key], want)
        assert batch[key].dtype == np.float32
    assert rng.bit_generator.state == oracle.bit_generator.state  # nothing more drawn


# --- the real MNIST test file ------------------------------------------------------------------


def test_real_mnist_test_set():
    if not REAL_MNIST_DIR.is_dir():
        reason = f"real MNIST directory {REAL_MNIST_DIR} is missing"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    images, labels = load_mnist(REAL_MNIST_DIR, split="t10k")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,)
    assert set(np.unique(labels)) == set(range(10))
    data = prepare_mnist(images, labels)
    assert data.train_x.shape == (8000, 144) and data.test_x.shape == (2000, 144)
    assert data.train_y.shape == (8000, 10) and data.test_y.shape == (2000, 10)
    assert data.train_x.mean() == pytest.approx(0.0, abs=1e-4)
    assert data.train_x.std() == pytest.approx(1.0, abs=1e-4)
