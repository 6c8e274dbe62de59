"""Build the default model that ``as-deploy serve`` ships: the digits CNN as ONNX.

It trains as-bench's ``digits-cnn`` workload on scikit-learn's bundled digits (80% split,
fixed seed; cached), exports it to ONNX with a dynamic batch axis, checks parity with
eager PyTorch in ONNX Runtime on every held-out image, and writes the version into the
package's embedded repository (``src/as_deploy/_default_model/``).

Run from the workspace root (the ``export`` extra is needed, the server is not)::

    uv run python packages/as-deploy/scripts/build_default_model.py [--force]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from as_deploy.export import export_to_repository

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = PACKAGE_ROOT / "src" / "as_deploy" / "_default_model"
NAME = "digits-cnn"
VERSION = "1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="replace an existing version")
    parser.add_argument("--out", type=Path, default=EMBEDDED, help="repository to write into")
    args = parser.parse_args(argv)
    target = args.out / NAME / VERSION
    if target.exists():
        if not args.force:
            print(f"{target} exists; pass --force to rebuild it", file=sys.stderr)
            return 1
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory() as scratch:
        result = export_to_repository(
            "digits-cnn",
            "onnx",
            args.out,
            name=NAME,
            version=VERSION,
            workdir=Path(scratch),
            parity_inputs=None,  # every held-out image (360), not the default 32
            description="CNN classifying 8x8 scikit-learn digit images into 0-9",
        )
    parity = result.manifest.parity
    assert parity is not None
    print(
        f"wrote {result.directory}: {parity.inputs_checked} held-out images, "
        f"max abs error {parity.max_abs_error:.2e}, top-1 agreement {parity.top1_agreement}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
