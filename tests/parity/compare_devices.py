"""Runs one parity suite on the cpu and on a device (default testdev) and requires both runs to
pass against PyTorch and every value they read back (outputs, gradients) to be the same bits.
Usage: compare_devices.py SUITE.py [DEVICE]. Exit status non-zero on any difference."""
import os
import subprocess
import sys
import tempfile


def run(suite, device, record):
    env = dict(os.environ, DC_PARITY_DEVICE=device, DC_PARITY_RECORD=record)
    p = subprocess.run([sys.executable, suite], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stdout.write(p.stdout[-6000:] + p.stderr[-6000:])
        print(f"compare_devices: {os.path.basename(suite)} failed on {device} "
              f"(exit status {p.returncode})")
        sys.exit(1)
    with open(record) as f:
        return f.read().splitlines()


def main():
    suite = sys.argv[1]
    device = sys.argv[2] if len(sys.argv) > 2 else "testdev"
    with tempfile.TemporaryDirectory() as tmp:
        want = run(suite, "cpu", os.path.join(tmp, "cpu.txt"))
        got = run(suite, device, os.path.join(tmp, device + ".txt"))
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            print(f"compare_devices: value {i} differs\n  cpu:     {w}\n  {device}: {g}")
            sys.exit(1)
    if len(want) != len(got):
        print(f"compare_devices: cpu read {len(want)} values, {device} {len(got)}")
        sys.exit(1)
    print(f"compare_devices: {os.path.basename(suite)}: {len(want)} values read back, "
          f"cpu and {device} equal bit for bit")


main()
