#!/usr/bin/env bash
# End-to-end on a kind cluster (CI's e2e-kind job): build the images into a local registry,
# bring up the platform stack and the dev stack with a local Pulumi backend, then run the gate.
# Needs Docker, kind, kubectl and the Pulumi CLI: it cannot run where no Docker engine exists.
#   infra/e2e/kind.sh build | deploy | diagnose
set -euo pipefail
cd "$(dirname "$0")/../.."

REGISTRY=${REGISTRY:-localhost:5000}
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-e2e-only}
mkdir -p .tfship/pulumi-state
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$PWD/.tfship/pulumi-state}

digest_of() {  # push an image to the local registry and print name@sha256:...
  docker push --quiet "$1" >/dev/null
  echo "$1@$(docker buildx imagetools inspect "$1" --format '{{json .Manifest.Digest}}' | tr -d '"')"
}

build() {
  if ! docker inspect kind-registry >/dev/null 2>&1; then
    docker run -d --restart=always -p 127.0.0.1:5000:5000 --network bridge --name kind-registry registry:2
    docker network connect kind kind-registry || true
  fi
  docker build -f service/Dockerfile -t "$REGISTRY/tfship-api:e2e" .
  docker build -f infra/images/loadtests.Dockerfile -t "$REGISTRY/tfship-loadtests:e2e" .
  digest_of "$REGISTRY/tfship-api:e2e" > .tfship/e2e-api-image
  digest_of "$REGISTRY/tfship-loadtests:e2e" > .tfship/e2e-loadtest-image
}

pin() {  # pin a third-party image of Pulumi.yaml's defaults to its current digest
  local key=$1 ref
  ref=$(.venv-infra/bin/python -c "import sys, yaml; print(yaml.safe_load(open('Pulumi.yaml'))['config'][sys.argv[1]]['default'].split('@')[0])" "$key")
  pulumi config set "$key" "$ref@$(docker buildx imagetools inspect "$ref" --format '{{json .Manifest.Digest}}' | tr -d '"')"
}

deploy() {
  (cd infra/platform
   pulumi stack select --create nonprod
   pulumi config set --secret grafanaAdminPassword "$(openssl rand -hex 16)"
   pulumi config set --secret alertReceiverSecrets \
     '{"pagerduty-routing-key": "e2e", "slack-webhook-url": "http://127.0.0.1:9/none", "dead-mans-switch-token": "e2e"}'
   pulumi up --yes --skip-preview --policy-pack ../policy)
  pulumi stack select --create dev
  pulumi config set platformStack organization/tfship-platform/nonprod
  pulumi config set apiBlueImage "$(cat .tfship/e2e-api-image)"  # both colours start on it
  pulumi config set apiGreenImage "$(cat .tfship/e2e-api-image)"
  pulumi config set loadtestImage "$(cat .tfship/e2e-loadtest-image)"
  for key in modelServerImage modelSyncImage redisImage curlImage postgresImage; do pin "$key"; done
  # reconcilerApiKey: a placeholder until a reader key exists (the reconciler changes nothing meanwhile).
  for key in apiKeySecret objectStoreAccessKeyId objectStoreSecretAccessKey databasePassword reconcilerApiKey; do
    pulumi config set --secret "$key" "$(openssl rand -hex 24)"
  done
  TFSHIP=.venv/bin/tfship .venv-infra/bin/python -m infra.deploy deploy --stack dev
}

diagnose() {
  kubectl get pods,events --all-namespaces -o wide || true
  kubectl -n tfship-dev logs --all-containers --prefix --tail=200 -l app.kubernetes.io/part-of=tfship || true
}

"${1:?usage: infra/e2e/kind.sh build|deploy|diagnose}"
