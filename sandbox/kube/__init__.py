"""The sandbox's Kubernetes side: a GKE-like control plane whose pods are real Docker containers.

``service.KubeService`` is what the daemon starts. It owns the sandbox CA (``ca``), the Google-style
token endpoint (``auth``), the Container API stand-in (``gke``), one object ``store`` and one HTTPS
``apiserver`` per cluster (with ``discovery``, ``openapi`` and server-side apply in ``ssa``), writes the
kubeconfig (``kubeconfig``), and starts the controllers, kubelet and proxies of ``controllers/``,
``kubelet/`` and ``proxy/``. The pipeline never imports any of it: it sees a kubeconfig, a GKE
endpoint and a CA bundle, as with the cloud.
"""
