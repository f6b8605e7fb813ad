"""Shared by the side-by-side benches (`train_vs_torch.py`, `conv_vs_torch.py`,
`gan_vs_torch.py`): timing a PyTorch callable, and our criterion bench's times."""
import os
import re
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, min_s=4.0, min_n=3):
    """Mean seconds per call of `fn` after one warm-up call: at least `min_n` calls and `min_s`
    seconds."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_s or n < min_n:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def criterion_seconds(package, bench, *filters):
    """Runs `cargo bench -p PACKAGE --bench BENCH --profile dev --locked` (criterion's bencher
    output, optional filters) from the workspace root; returns {bench id: seconds per iteration}."""
    res = subprocess.run(
        ["cargo", "bench", "-p", package, "--bench", bench, "--profile", "dev", "--locked",
         "--", "--output-format", "bencher", *filters],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout
    out = {}
    for line in res.splitlines():
        m = re.match(r"test (\S+)\s+\.\.\. bench:\s+([\d,]+) ns/iter", line)
        if m:
            out[m.group(1)] = float(m.group(2).replace(",", "")) / 1e9
    return out
