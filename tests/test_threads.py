"""The codec releases the interpreter: many threads compress and decompress at once."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

import splitans


def test_thread_pool_round_trips():
    rng = np.random.default_rng(20)
    inputs = [(rng.geometric(0.05 + 0.02 * i, size=400_000) % 256).astype(np.uint8) for i in range(8)]
    inputs += [rng.integers(-1000, 1000, size=(64, 3000)).astype(np.int32) for _ in range(4)]

    def job(x):
        blob = splitans.compress(x)
        return blob, splitans.decompress(blob)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(job, inputs * 2))
    for x, (blob, y) in zip(inputs * 2, results):
        np.testing.assert_array_equal(x, y)
        assert blob == splitans.compress(x, threads=1)
