"""torch's view of the CUDA devices, as JSON; run as ``python -m as_bench.probe._torch_cuda``.

Run in a child process by the probe (see ``_cuda``), so that importing torch and creating
a CUDA context happen there and not in the process that measures. Imports torch.
"""

from __future__ import annotations

import json
import sys

__all__ = ["report"]


def report() -> str:
    """Return the CUDA runtime version torch was built for and each visible device, as JSON."""
    import torch  # the whole point of this module; only ever run where torch is wanted

    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            devices.append(
                {
                    "index": index,
                    "name": props.name,
                    "total_memory": int(props.total_memory),
                    "major": int(props.major),
                    "minor": int(props.minor),
                    "multi_processor_count": int(props.multi_processor_count),
                }
            )
    return json.dumps({"cuda_runtime": torch.version.cuda, "devices": devices})


if __name__ == "__main__":
    sys.stdout.write(report() + "\n")
