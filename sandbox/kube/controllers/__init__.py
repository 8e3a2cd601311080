"""The controllers that make a sandbox cluster behave like one: what kube-controller-manager, the scheduler
and the kubelet's API side do, over the object store.

Modules: ``rollout.py`` (the Deployment arithmetic, pure), ``deployment.py``, ``replicaset.py``,
``events.py`` (core v1 Events with client-go's deduplication) and ``objects.py`` (shared helpers).
"""
