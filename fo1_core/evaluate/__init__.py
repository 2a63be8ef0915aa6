"""Benchmark numbers for FO1: COCO detection mAP and counting accuracy.

Run as `python -m fo1_core.evaluate`. One module per job: `coco` and `count` hold each
benchmark's protocol, `datafiles` reads their files, `runner` the shared loop (boxes, questions,
resumable records), `records` the per-rank JSON-lines files, `distributed` the launcher's ranks,
`timing` the per-image timing summary.
"""
