#!/usr/bin/env bash
# install-helm.sh builds the pinned Helm CLI from its Go module once into
# $AW_STATE/bin (default <repo>/.state/bin) and prints its path. It is
# idempotent: when the binary exists and reports the pinned version it does
# nothing. The first build downloads the Kubernetes modules and can take
# ~15 minutes on a small machine.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
state="${AW_STATE:-$repo/.state}"
bin="$state/bin"
helm="$bin/helm"

# `go install` leaves the version ldflags unset (helm version says "v4.3"),
# so the module version is read from the binary's build information.
built_version() { go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v4" {print $3}'; }

if [ -x "$helm" ] && [ "$(built_version "$helm")" = "$HELM_VERSION" ]; then
  echo "$helm"
  exit 0
fi

mkdir -p "$bin"
echo "install-helm: building helm.sh/helm/v4/cmd/helm@$HELM_VERSION into $bin (first build is slow)" >&2
GOBIN="$bin" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
[ "$(built_version "$helm")" = "$HELM_VERSION" ] || {
  echo "install-helm: $helm does not report $HELM_VERSION" >&2
  exit 1
}
echo "$helm"
