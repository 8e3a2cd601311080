"""A local stand-in for the cloud: registry, git remote, GKE and Kubernetes API (see DESIGN.md).

Test and demo infrastructure. The pipeline never imports this package; it only sees the addresses,
credentials, kubeconfig and CA bundle that ``invoke sandbox.env`` prints.
"""

from .errors import SandboxError

__all__ = ["SandboxError"]
