#!/usr/bin/env bash
# Core paths on CUDA against the CPU (benchmarks/gpu_check.py); exit 0 with "no CUDA device" without one.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="${here}/../src${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python}" "${here}/gpu_check.py" "$@"
