#!/usr/bin/env bash
# `make deploy-sse`: fetch and verify the pinned ADOT collector layer, build the SSE image, push it to
# ECR and print its digest for Terraform (`sse_image_digest`).
#
#   docker/sse/deploy.sh          build and push (the layer must be pinned in collector-layer.lock)
#   docker/sse/deploy.sh pin      fetch the layer named in the lock, check it against the CodeSha256
#                                 AWS reports for it, write its SHA-256 (and the base image digest,
#                                 when docker can resolve it) into the lock; commit the lock after
#
# Environment: ENVIRONMENT (dev|preprod|prod, default dev), AWS_REGION (default: the CLI's region),
# ECR_REPOSITORY (default sentiment-analyzer-$ENVIRONMENT-sse; Terraform creates it), IMAGE_TAG
# (default: the git commit). Needs the AWS CLI, curl, docker, sha256sum, the repo's venv (PYTHON).
#
# The build is scripts/sse_image.py's: the committed Dockerfile, one --platform from the function's
# architecture (Terraform's lambda_architecture), no provenance attestation, and the base it used
# and the image size in the log. Lambda runs single-architecture image manifests only
# (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html): buildx's default provenance
# attestation would push an image index instead, so it is switched off.
#
# Local end-to-end test (tests/image/): REGISTRY=127.0.0.1:<port> pushes to that registry instead of
# ECR (no AWS call, no login), and COLLECTOR_LAYER=standin embeds the stand-in collector
# (docker/sse/standin-collector/, pinned by its own lock) instead of fetching the ADOT layer. A real
# deploy sets neither: the layer named in collector-layer.lock is downloaded, checked against AWS's
# CodeSha256 and the committed pin, and replaces the stand-in in the image's /opt/extensions/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
lock=${COLLECTOR_LAYER_LOCK:-$here/collector-layer.lock}
layer_dir=${LAYER_DIR:-$here/.layer}
layer_zip=$layer_dir/collector-layer.zip
python=${PYTHON:-$repo_root/.venv/bin/python}

fail() { echo "deploy-sse: $*" >&2; exit 1; }
lock_value() { sed -n "s/^$1=//p" "$lock" | tail -n 1; }
set_lock_value() {
    local updated
    updated=$(mktemp)
    sed "s|^$1=.*|$1=$2|" "$lock" > "$updated"
    cat "$updated" > "$lock"
    rm -f "$updated"
}

layer_arn=$(lock_value LAYER_ARN)
[[ $layer_arn =~ ^arn:aws:lambda:([a-z0-9-]+):901920570463:layer:aws-otel-collector-[a-z0-9]+-ver-[0-9-]+:[0-9]+$ ]] \
    || fail "LAYER_ARN in $lock must be a versioned ADOT collector layer ARN, got '$layer_arn'"
layer_region=${BASH_REMATCH[1]}

# Download the layer zip; check it against AWS's own CodeSha256 (base64) for that layer version.
fetch_layer() {
    local location code_sha expected actual
    read -r location code_sha < <(aws lambda get-layer-version-by-arn --region "$layer_region" --arn "$layer_arn" \
        --query '[Content.Location, Content.CodeSha256]' --output text)
    [[ -n $location && -n $code_sha ]] || fail "AWS returned no download location for $layer_arn"
    mkdir -p "$layer_dir"
    curl --fail --silent --show-error --location --output "$layer_zip" "$location"
    expected=$(printf '%s' "$code_sha" | base64 --decode | od -An -tx1 | tr -d ' \n')
    actual=$(sha256sum "$layer_zip" | cut -d' ' -f1)
    [[ $actual == "$expected" ]] || fail "the downloaded layer ($actual) is not what AWS reports ($expected)"
    echo "$actual"
}

if [[ ${1:-} == pin ]]; then
    sha=$(fetch_layer)
    set_lock_value LAYER_SHA256 "$sha"
    base=$(lock_value BASE_IMAGE)
    if [[ $base != *@sha256:* ]] && docker pull --quiet "$base" > /dev/null 2>&1; then
        digest=$(docker image inspect --format '{{index .RepoDigests 0}}' "$base")
        set_lock_value BASE_IMAGE "$base@${digest#*@}"
    fi
    echo "pinned $layer_arn -> $sha in $lock (commit it)"
    exit 0
fi
[[ $# -eq 0 ]] || fail "usage: deploy.sh [pin]"

environment=${ENVIRONMENT:-dev}
if [[ ${COLLECTOR_LAYER:-real} == standin ]]; then
    layer_args=(--layer standin)
else
    pinned=$(lock_value LAYER_SHA256)
    [[ $pinned =~ ^[0-9a-f]{64}$ ]] || fail "the collector layer is not pinned: run 'docker/sse/deploy.sh pin' and commit $lock"
    sha=$(fetch_layer)
    [[ $sha == "$pinned" ]] || fail "the layer zip ($sha) differs from the pin in $lock ($pinned)"
    layer_args=(--layer real --layer-zip "$layer_zip" --lock "$lock")
fi
base=$(lock_value BASE_IMAGE)
[[ $base == *@sha256:* ]] || echo "deploy-sse: warning: base image $base is not pinned by digest (deploy.sh pin)" >&2
platform=$("$python" "$repo_root/scripts/sse_image.py" platform --environment "$environment")
repository=${ECR_REPOSITORY:-sentiment-analyzer-$environment-sse}
tag=${IMAGE_TAG:-$(git -C "$repo_root" rev-parse --short=12 HEAD)}

if [[ -n ${REGISTRY:-} ]]; then
    registry=$REGISTRY
else
    region=${AWS_REGION:-$(aws configure get region)}
    [[ -n $region ]] || fail "set AWS_REGION"
    account=$(aws sts get-caller-identity --query Account --output text)
    registry=$account.dkr.ecr.$region.amazonaws.com
    aws ecr describe-repositories --region "$region" --repository-names "$repository" > /dev/null \
        || fail "ECR repository $repository does not exist in $region (terraform apply creates it)"
fi

"$python" "$repo_root/scripts/sse_image.py" build "${layer_args[@]}" --platform "$platform" \
    --base "$base" --tag "$registry/$repository:$tag"
[[ -n ${REGISTRY:-} ]] || aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
docker push "$registry/$repository:$tag"
# The digest this registry holds (an image pushed to several registries has one RepoDigest per registry)
digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$registry/$repository:$tag" \
    | sed -n "s|^$registry/$repository@||p" | head -n 1)
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || fail "could not read the pushed image's digest"
echo "image: $registry/$repository@$digest ($platform)"
echo "sse_image_digest = \"$digest\""
