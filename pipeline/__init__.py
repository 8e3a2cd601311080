"""The campus GitOps delivery pipeline: build, pin, apply, verify, roll back.

One module per stage (``build``, ``overlays``, ``gitops``, ``validate``, ...), chained only in
``release``. ``tasks.py`` is the command layer that prints; everything here logs and returns data.
"""
