#!/usr/bin/env bash
# Build and push the application images (image-api: backend + worker, image-web: frontend)
# from the upstream source, with a tag derived from git, never `latest`.
#
#   images/build.sh --registry ghcr.io/example-team            # build + push both images
#   images/build.sh --registry ghcr.io/example-team --dry-run  # print the commands only
#   images/build.sh --registry ghcr.io/example-team --print-tag
#
# Tag derivation (unless --tag is given):
#   - HEAD of this repository is exactly at a git tag   -> that tag          (e.g. v1.4.0)
#   - otherwise                                         -> short commit SHA  (e.g. 3f9c2ab)
#   - --upstream-ref differs from images/UPSTREAM_REF    -> "-<upstream short SHA>" appended,
#     because then this repository's commit alone no longer says what was built.
# A dirty working tree is refused (its commit does not describe what would be built)
# unless --allow-dirty, which appends "-dirty".
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEFAULT_REPO_DIR="$(cd "${SCRIPT_DIR}/.." && pwd)"

usage() {
  cat <<'EOF'
Usage: images/build.sh [options]

  -r, --registry REG       registry and namespace, e.g. ghcr.io/example-team   (env IMAGE_REGISTRY)
  -t, --tag TAG            image tag instead of the derived one; 'latest' is refused (env IMAGE_TAG)
      --upstream-ref REF   upstream branch, tag or commit to build (env UPSTREAM_REF;
                           default: the commit recorded in images/UPSTREAM_REF)
      --upstream-repo URL  upstream git repository (env UPSTREAM_REPO;
                           default https://github.com/sandhose/projet-cloud-virt.git)
      --only NAME          build only 'api' or 'web'
      --platform LIST      target platforms (env PLATFORMS; default linux/amd64)
      --cache-registry     use <registry>/<image>:buildcache as a BuildKit registry cache
      --no-push            build into the local docker image store (--load) instead of pushing
      --force              push even if the tag already exists in the registry
      --allow-dirty        build from a dirty working tree (tag gets a "-dirty" suffix)
  -n, --dry-run            print the commands, run nothing that needs docker (env DRY_RUN=1)
      --print-tag          print the derived tag and exit
  -h, --help               this help

Environment: REPO_DIR (git checkout whose commit/tag names the images; default: this
repository), API_IMAGE_NAME (default image-api), WEB_IMAGE_NAME (default image-web),
DOCKER (docker binary, default docker).
EOF
}

die() {
  echo "build.sh: $*" >&2
  exit 2
}

registry="${IMAGE_REGISTRY:-}"
tag="${IMAGE_TAG:-}"
upstream_repo="${UPSTREAM_REPO:-https://github.com/sandhose/projet-cloud-virt.git}"
upstream_ref="${UPSTREAM_REF:-}"
platforms="${PLATFORMS:-linux/amd64}"
repo_dir="${REPO_DIR:-${DEFAULT_REPO_DIR}}"
api_name="${API_IMAGE_NAME:-image-api}"
web_name="${WEB_IMAGE_NAME:-image-web}"
docker_bin="${DOCKER:-docker}"
dry_run="${DRY_RUN:-0}"
only=""
push=1
force=0
allow_dirty=0
cache_registry=0
print_tag=0

need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -r | --registry) need_value "$@"; registry="$2"; shift 2 ;;
    -t | --tag) need_value "$@"; tag="$2"; shift 2 ;;
    --upstream-ref) need_value "$@"; upstream_ref="$2"; shift 2 ;;
    --upstream-repo) need_value "$@"; upstream_repo="$2"; shift 2 ;;
    --only) need_value "$@"; only="$2"; shift 2 ;;
    --platform) need_value "$@"; platforms="$2"; shift 2 ;;
    --cache-registry) cache_registry=1; shift ;;
    --no-push) push=0; shift ;;
    --force) force=1; shift ;;
    --allow-dirty) allow_dirty=1; shift ;;
    -n | --dry-run) dry_run=1; shift ;;
    --print-tag) print_tag=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

case "$dry_run" in
  1 | true | yes) dry_run=1 ;;
  *) dry_run=0 ;;
esac

case "$only" in
  "") images=(api web) ;;
  api | web) images=("$only") ;;
  *) die "--only must be 'api' or 'web', got '$only'" ;;
esac

# ---- this repository: commit, tag, cleanliness ---------------------------------------
git -C "$repo_dir" rev-parse --git-dir >/dev/null 2>&1 || die "$repo_dir is not a git checkout (set REPO_DIR)"
repo_commit="$(git -C "$repo_dir" rev-parse HEAD)"
repo_short="${repo_commit:0:7}"
repo_tag="$(git -C "$repo_dir" describe --tags --exact-match HEAD 2>/dev/null || true)"
dirty=0
dirty_note=""
# Only images/ matters (Dockerfiles, build contexts, UPSTREAM_REF), untracked files included.
if [[ -n "$(git -C "$repo_dir" status --porcelain --untracked-files=all -- images)" ]]; then
  dirty_note=" (dirty)"
  dirty=1
  [[ "$allow_dirty" == 1 ]] || die "images/ in $repo_dir has uncommitted changes: commit them, or pass --allow-dirty"
fi

# ---- upstream: which commit to build -------------------------------------------------
pinned_ref=""
pin_file="$repo_dir/images/UPSTREAM_REF"
if [[ -f "$pin_file" ]]; then
  pinned_ref="$(grep -v -E '^[[:space:]]*(#|$)' "$pin_file" | head -n 1 | tr -d '[:space:]')" || true
fi
upstream_overridden=0
if [[ -z "$upstream_ref" ]]; then
  [[ -n "$pinned_ref" ]] || die "no --upstream-ref given and $pin_file holds no ref"
  upstream_ref="$pinned_ref"
elif [[ "$upstream_ref" != "$pinned_ref" ]]; then
  upstream_overridden=1
fi

resolve_upstream() {
  local ref="$1" lines commit
  if [[ "$ref" =~ ^[0-9a-f]{40}$ ]]; then
    echo "$ref"
    return 0
  fi
  # Branch or tag: resolve it once, here, so the build (and its layer cache) sees a fixed
  # commit. Peeled annotated tags (^{}) win over the tag object itself.
  lines="$(git ls-remote "$upstream_repo" "refs/heads/$ref" "refs/tags/$ref" "refs/tags/$ref^{}")" ||
    die "cannot list refs of $upstream_repo"
  commit="$(awk -v r="refs/tags/$ref^{}" '$2 == r { print $1 }' <<<"$lines")"
  [[ -n "$commit" ]] || commit="$(awk -v r="refs/tags/$ref" '$2 == r { print $1 }' <<<"$lines")"
  [[ -n "$commit" ]] || commit="$(awk -v r="refs/heads/$ref" '$2 == r { print $1 }' <<<"$lines")"
  [[ -n "$commit" ]] || die "upstream ref '$ref' not found in $upstream_repo (give a branch, a tag or a full commit SHA)"
  echo "$commit"
}
upstream_commit="$(resolve_upstream "$upstream_ref")"
upstream_short="${upstream_commit:0:7}"

# ---- the tag -------------------------------------------------------------------------
if [[ -z "$tag" ]]; then
  tag="${repo_tag:-$repo_short}"
  if [[ "$upstream_overridden" == 1 ]]; then
    tag="${tag}-${upstream_short}"
  fi
  if [[ "$dirty" == 1 ]]; then
    tag="${tag}-dirty"
  fi
fi
shopt -s nocasematch
if [[ "$tag" == "latest" ]]; then
  die "refusing the tag 'latest': a rollout must name an immutable version (use a git tag or a commit SHA)"
fi
shopt -u nocasematch
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid image tag '$tag'"

if [[ "$print_tag" == 1 ]]; then
  echo "$tag"
  exit 0
fi

# ---- the registry --------------------------------------------------------------------
[[ -n "$registry" ]] || die "no registry given: use --registry ghcr.io/<namespace> (or IMAGE_REGISTRY)"
registry="${registry%/}"
name_re='^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$'
[[ "$registry" =~ $name_re ]] || die "invalid registry/namespace '$registry' (lowercase, e.g. ghcr.io/example-team)"

if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then
  created="$(date -u -d "@${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ)"
else
  created="$(TZ=UTC git -C "$repo_dir" show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)"
fi

image_name() {
  case "$1" in
    api) echo "$api_name" ;;
    web) echo "$web_name" ;;
  esac
}

# Quote for display only when needed, so printed commands stay readable and paste-able.
shell_quote() {
  local arg="$1"
  if [[ "$arg" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
    printf '%s' "$arg"
  else
    printf "'%s'" "${arg//\'/\'\\\'\'}"
  fi
}

run() {
  if [[ "$dry_run" == 1 ]]; then
    printf '+'
    local arg
    for arg in "$@"; do
      printf ' '
      shell_quote "$arg"
    done
    printf '\n'
  else
    "$@"
  fi
}

metadata_dir=""
if [[ "$dry_run" == 0 ]]; then
  command -v "$docker_bin" >/dev/null 2>&1 || die "'$docker_bin' not found (use --dry-run to only print the commands)"
  metadata_dir="$(mktemp -d)"
  trap 'rm -rf "$metadata_dir"' EXIT
fi

echo "# this repository: ${repo_commit}${repo_tag:+ (tag $repo_tag)}${dirty_note}"
echo "# upstream:        ${upstream_repo} ${upstream_ref} -> ${upstream_commit}"
echo "# image tag:       ${tag}"

declare -A refs=()
for img in "${images[@]}"; do
  ref="${registry}/$(image_name "$img"):${tag}"
  refs[$img]="$ref"
  context="${repo_dir}/images/${img}"
  if [[ "$dry_run" == 0 ]]; then
    [[ -f "$context/Dockerfile" ]] || die "missing $context/Dockerfile"
  fi

  if [[ "$push" == 1 && "$force" == 0 ]]; then
    # Tags are immutable by convention: a cluster may already run this exact reference.
    if [[ "$dry_run" == 1 ]]; then
      run "$docker_bin" buildx imagetools inspect "$ref"
      echo "#   (the build is refused if the command above succeeds, i.e. the tag exists; --force overrides)"
    elif "$docker_bin" buildx imagetools inspect "$ref" >/dev/null 2>&1; then
      die "$ref already exists in the registry; tags are immutable (use a new git tag, or --force)"
    fi
  fi

  cmd=("$docker_bin" buildx build
    --platform "$platforms"
    --file "${context}/Dockerfile"
    --build-arg "UPSTREAM_REPO=${upstream_repo}"
    --build-arg "UPSTREAM_REF=${upstream_commit}"
    --build-arg "UPSTREAM_COMMIT=${upstream_commit}"
    --build-arg "VERSION=${tag}"
    --build-arg "RECIPE_REVISION=${repo_commit}"
    --build-arg "CREATED=${created}"
    --tag "$ref")
  if [[ "$cache_registry" == 1 ]]; then
    cache_ref="${registry}/$(image_name "$img"):buildcache"
    cmd+=(--cache-from "type=registry,ref=${cache_ref}")
    if [[ "$push" == 1 ]]; then
      cmd+=(--cache-to "type=registry,ref=${cache_ref},mode=max")
    fi
  fi
  if [[ "$push" == 1 ]]; then
    cmd+=(--push)
  else
    cmd+=(--load)
  fi
  if [[ -n "$metadata_dir" ]]; then
    cmd+=(--metadata-file "${metadata_dir}/${img}.json")
  fi
  cmd+=("$context")
  run "${cmd[@]}"
done

# ---- what the operator pastes into the cluster description ---------------------------
pinned_ref_for() {
  local img="$1" digest=""
  if [[ -n "$metadata_dir" && -f "${metadata_dir}/${img}.json" ]]; then
    digest="$(grep -o '"containerimage.digest": *"sha256:[0-9a-f]\{64\}"' "${metadata_dir}/${img}.json" |
      grep -o 'sha256:[0-9a-f]\{64\}' | head -n 1)" || true
  fi
  if [[ -n "$digest" && "$push" == 1 ]]; then
    echo "${refs[$img]}@${digest}"
  else
    echo "${refs[$img]}"
  fi
}

echo
echo "# Paste into the cluster description (\$CLUSTER_FILE, e.g. clusters/example.yaml), under app.images"
echo "# (the worker runs the api image), then run 'npm run deploy' (see docs/images.md):"
for img in "${images[@]}"; do
  echo "    ${img}: $(pinned_ref_for "$img")"
done
