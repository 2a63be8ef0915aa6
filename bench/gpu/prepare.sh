#!/usr/bin/env bash
# Run here, before a GPU session: fills .device/ (git-ignored) with what the device machine lacks.
# Its image has Python 3.12, torch 2.11 and transformers 5.17, nothing to download from, and no
# ../shared beside the checkout. So .device/ gets the pure-Python wheels our code needs on top
# (transformers 5.23.0, supervision 0.31.2 and its two small dependencies missing there) and a
# copy of the reference fixture. Then: run(command="bash bench/gpu/run.sh checks", carry=[".device"]).
set -euo pipefail
cd "$(dirname "$0")/../.."

rm -rf .device && mkdir -p .device/wheels .device/shared
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation py --platform any -d .device/wheels \
  transformers==5.23.0 supervision==0.31.2 pydeprecate==0.13.0 defusedxml==0.7.1 \
  2> >(grep -v '^WARNING: Location' >&2)
cp -r ../shared/fo1-reference .device/shared/
du -sh .device
