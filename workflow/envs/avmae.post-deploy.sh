#!/usr/bin/env bash
# Runs once after Snakemake creates avmae.yaml's environment, in the workflow's working
# directory (the repository root): installs the avmae package and its pinned dependencies.
set -euo pipefail
pip install -e .
