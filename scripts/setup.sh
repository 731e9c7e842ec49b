#!/usr/bin/env bash
# Create .venv (if missing) and install the project with its dev and cluster (Ray) extras from the project's own files.
# Icarus Verilog (the second simulator) comes from Debian; it is installed when we are root and it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch==2.13.0 first: the CPU wheel on this machine's disk satisfies it, so nothing pulls a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev,cluster,fpga]"
if ! command -v iverilog >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q iverilog >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q iverilog >/dev/null; }) \
      || echo "setup: could not install iverilog; Icarus tests will skip" >&2
  else
    echo "setup: iverilog not found (sudo apt-get install iverilog); Icarus tests will skip" >&2
  fi
fi
