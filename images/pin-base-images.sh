#!/usr/bin/env bash
# Pin (or check) the base images of the Dockerfiles by digest.
#
#   images/pin-base-images.sh            rewrite every `image:tag` in FROM, COPY --from and the
#                                        `# syntax=` directive to `image:tag@sha256:<digest>`
#   images/pin-base-images.sh --check    exit 1 if a reference has no digest, or if its tag now
#                                        resolves to another digest (a rebuilt base image)
#   images/pin-base-images.sh [--check] path/to/Dockerfile ...
#
# Digests come from the registry through `docker buildx imagetools inspect` (the digest of
# the multi-platform index, so every platform stays buildable). Nothing is ever guessed: a
# reference that cannot be resolved makes the script fail. Needs docker with buildx and
# registry access; DOCKER overrides the docker binary (tests use a stub).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
docker_bin="${DOCKER:-docker}"
check=0
files=()

for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    -h | --help)
      sed -n '2,13p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    -*)
      echo "pin-base-images.sh: unknown option $arg" >&2
      exit 2
      ;;
    *) files+=("$arg") ;;
  esac
done
if [[ ${#files[@]} -eq 0 ]]; then
  files=("$SCRIPT_DIR"/*/Dockerfile)
fi

command -v perl >/dev/null 2>&1 || {
  echo "pin-base-images.sh: perl is required" >&2
  exit 2
}

# Image references of one Dockerfile, one per line, as written (possibly with @digest).
image_refs() {
  local file="$1"
  {
    # `# syntax=` parser directive (first lines only, before any instruction)
    sed -n -E '1,5s/^#[[:space:]]*syntax=([^[:space:]]+).*/\1/p' "$file"
    # FROM [--platform=...] ref [AS name]
    sed -n -E 's/^[[:space:]]*FROM[[:space:]]+(--[^[:space:]]+[[:space:]]+)*([^[:space:]]+).*/\2/Ip' "$file"
    # COPY --from=ref (stage names have no ':' or '@', images always do: tags are required)
    grep -o -i -E -- '--from=[^[:space:]]+' "$file" | sed 's/^--from=//' || true
  } | grep -E '[:@]' | sort -u
}

resolve_digest() {
  local ref="$1" out digest
  out="$("$docker_bin" buildx imagetools inspect "$ref" --format '{{json .Manifest}}')" || {
    echo "pin-base-images.sh: cannot resolve $ref" >&2
    return 1
  }
  digest="$(grep -o -E '"digest" *: *"sha256:[0-9a-f]{64}"' <<<"$out" | head -n 1 | grep -o -E 'sha256:[0-9a-f]{64}')" || true
  if [[ -z "$digest" ]]; then
    echo "pin-base-images.sh: no digest in the answer for $ref" >&2
    return 1
  fi
  echo "$digest"
}

status=0
for file in "${files[@]}"; do
  [[ -f "$file" ]] || {
    echo "pin-base-images.sh: no such file $file" >&2
    exit 2
  }
  while IFS= read -r written; do
    [[ -n "$written" ]] || continue
    base="${written%%@*}"
    current=""
    [[ "$written" == *@* ]] && current="${written#*@}"
    if [[ "$base" == *'$'* ]]; then
      echo "$file: $written uses a variable; write the reference literally" >&2
      status=1
      continue
    fi
    digest="$(resolve_digest "$base")" || {
      status=1
      continue
    }
    if [[ "$check" == 1 ]]; then
      if [[ -z "$current" ]]; then
        echo "$file: $base is not pinned (resolves to $digest)"
        status=1
      elif [[ "$current" != "$digest" ]]; then
        echo "$file: $base is pinned to $current but now resolves to $digest"
        status=1
      else
        echo "$file: $base@$digest ok"
      fi
    else
      OLD="$base" NEW="$base@$digest" perl -pi -e \
        's/(?<=[\s=])\Q$ENV{OLD}\E(\@sha256:[0-9a-f]{64})?(?=\s|$)/$ENV{NEW}/g' "$file"
      echo "$file: $base -> $digest"
    fi
  done < <(image_refs "$file")
done
exit "$status"
