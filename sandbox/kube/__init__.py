"""The Kubernetes side of the sandbox: CA, API servers, controllers, kubelet and proxies."""
