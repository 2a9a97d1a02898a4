#!/usr/bin/env bash
# Runs once after Snakemake creates avmae.yaml's environment, in the workflow's working
# directory (the repository root): installs exactly the lock, then the avmae package.
set -euo pipefail
pip install --no-deps -r requirements.lock -e .
