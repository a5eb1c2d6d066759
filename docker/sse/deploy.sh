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
# (default: the git commit). Needs the AWS CLI, curl, docker, sha256sum.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
lock=${COLLECTOR_LAYER_LOCK:-$here/collector-layer.lock}
layer_dir=${LAYER_DIR:-$here/.layer}
layer_zip=$layer_dir/collector-layer.zip

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

pinned=$(lock_value LAYER_SHA256)
[[ $pinned =~ ^[0-9a-f]{64}$ ]] || fail "the collector layer is not pinned: run 'docker/sse/deploy.sh pin' and commit $lock"
sha=$(fetch_layer)
[[ $sha == "$pinned" ]] || fail "the layer zip ($sha) differs from the pin in $lock ($pinned)"
base=$(lock_value BASE_IMAGE)
[[ $base == *@sha256:* ]] || echo "deploy-sse: warning: base image $base is not pinned by digest (deploy.sh pin)" >&2

environment=${ENVIRONMENT:-dev}
region=${AWS_REGION:-$(aws configure get region)}
[[ -n $region ]] || fail "set AWS_REGION"
account=$(aws sts get-caller-identity --query Account --output text)
repository=${ECR_REPOSITORY:-sentiment-analyzer-$environment-sse}
registry=$account.dkr.ecr.$region.amazonaws.com
tag=${IMAGE_TAG:-$(git -C "$repo_root" rev-parse --short=12 HEAD)}
aws ecr describe-repositories --region "$region" --repository-names "$repository" > /dev/null \
    || fail "ECR repository $repository does not exist in $region (terraform apply creates it)"

docker build --file "$here/Dockerfile" --build-arg "BASE_IMAGE=$base" --tag "$registry/$repository:$tag" "$repo_root"
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
docker push "$registry/$repository:$tag"
digest=$(docker image inspect --format '{{index .RepoDigests 0}}' "$registry/$repository:$tag")
digest=${digest#*@}
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || fail "could not read the pushed image's digest"
echo "image: $registry/$repository@$digest"
echo "sse_image_digest = \"$digest\""
