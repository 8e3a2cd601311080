"""How to reach a cluster's API server: the value that the cloud side hands to the Kubernetes side.

A :class:`ClusterAccess` is an endpoint, the cluster's CA and a :class:`TokenSource` that returns a valid
bearer token whenever it is asked (and a new one after :meth:`TokenSource.invalidate`); a
:class:`KubeContext` names a kubeconfig context instead (teams on other clusters). :data:`Access` is
either. Nothing here talks to a network or imports a third-party client, so both borders may import it.

Neighbours: ``gke`` builds a :class:`ClusterAccess` from the Container API and google-auth (its token
source is ``gke.GoogleToken``); ``kube`` turns either kind of access into an API client; ``release``
chooses which one an environment uses; ``apply`` and ``rollout`` pass it through to ``kube``. Neither
``gke`` nor ``kube`` imports the other: this module is their only shared vocabulary.

Tokens never enter a ``repr``, a message or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# What to try when a cluster refuses the tokens of a ClusterAccess. Today every ClusterAccess comes from
# GKE, whose tokens come from Application Default Credentials.
ADC_HINT = "Run `gcloud auth application-default login` or check Workload Identity Federation"


class TokenSource(Protocol):
    """A bearer token for the API server, valid when returned; ``invalidate`` forces a new one."""

    def token(self) -> str: ...

    def invalidate(self) -> None: ...


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach one cluster's API server: what ``kube`` needs, and nothing else."""

    # Names the cluster in messages, e.g. "GKE cluster campus-staging/asia-south1-a/staging".
    description: str
    # https://<endpoint>
    server: str
    # The cluster's own CA (PEM): GKE API servers present certificates no public CA signs.
    ca_pem: str = field(repr=False)
    tokens: TokenSource = field(repr=False, compare=False)

    @property
    def auth_hint(self) -> str:
        """What to try when the API server refuses our tokens."""
        return ADC_HINT


@dataclass(frozen=True)
class KubeContext:
    """A kubeconfig context to use instead of a GKE lookup."""

    context: str
    # None: $KUBECONFIG, else ~/.kube/config (the client's own rules).
    kubeconfig: str | None = None

    @property
    def description(self) -> str:
        return f"kubeconfig context {self.context}"

    @property
    def auth_hint(self) -> str:
        """What to try when the API server refuses the context's credentials."""
        return f"Check the credentials of {self.description} (an expired token or a failing exec plugin?)"


Access = ClusterAccess | KubeContext


class StaticToken:
    """A token that never changes (tests; a team that hands the pipeline a short-lived token)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    def token(self) -> str:
        return self._value

    def invalidate(self) -> None:
        """Nothing to refresh: a rejected static token stays rejected."""
