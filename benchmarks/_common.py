"""Shared helpers of the benchmark scripts: machine info, load average, peak RSS, result files."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (``uptime``)."""
    return [round(v, 2) for v in os.getloadavg()]


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (GiB, from getrusage: Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def current_rss_gib() -> float:
    """Current resident set size (GiB, from /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0: write 5 to clear_refs).

    After it, ``/proc/self/status`` VmHWM restarts from the current RSS; getrusage does not reset.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def vm_hwm_gib() -> float:
    """Peak RSS since the last :func:`reset_peak_rss` (VmHWM, GiB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, torch version and threads, CUDA device if any."""
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 2**20
    except OSError:
        mem_gib = float("nan")
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    info = {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
        "amx": "amx_bf16" in flags, "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def write_results(name: str, payload: dict[str, Any], markdown: str) -> None:
    """Write ``benchmarks/results/<name>.json`` and ``<name>.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
               "command": " ".join([Path(sys.executable).name, *sys.argv]), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    header = (f"<!-- {payload['timestamp']}; {payload['machine']['cpu']}, {payload['machine']['cores']} cores; "
              f"command: {payload['command']} -->\n")
    (RESULTS / f"{name}.md").write_text(header + markdown.rstrip() + "\n")
    print(f"wrote {RESULTS / (name + '.json')} and .md")


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """``columns``: (key, header, format). Missing keys print as empty cells."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append("" if value is None else (fmt.format(value) if fmt else str(value)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sync(device: Any) -> None:
    """Wait for queued CUDA work (no-op on CPU)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()
