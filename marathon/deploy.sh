#!/usr/bin/env bash
# Creates or updates ganger's Marathon apps: fills the delegator's host and the image into
# delegator.json and marathon-sample.json, then sends them to Marathon's REST API with curl.
# Whether to create (POST /v2/apps) or update (PUT /v2/apps/ID) is decided by asking Marathon
# for the app first (GET /v2/apps/ID: 200 means it exists, 404 that it does not).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
me=$(basename "$0")

# The placeholders in the JSON files, replaced before anything is sent.
host_placeholder="DELEGATOR_HOST"
image_placeholder="REGISTRY/ganger:TAG"

usage() {
    cat <<USAGE
Usage: $me [--dry-run] [--delegator-host HOST] [--image IMAGE] delegator|workers|both

Creates or updates ganger's apps on Marathon: 'delegator' sends delegator.json, 'workers'
marathon-sample.json, 'both' the delegator first and then the workers.
An app Marathon already has is updated (PUT /v2/apps/ID), a new one created (POST /v2/apps).

  --delegator-host HOST  the host the delegator runs on and workers dial
                         (default: \$DELEGATOR_HOST); it must be the Mesos agent's hostname
  --image IMAGE          the ganger image, e.g. registry.example.net:5000/ganger:1.0
                         (default: \$GANGER_IMAGE)
  --dry-run              print what would be sent, and send nothing
  -h, --help             this text

Environment: MARATHON_URL, Marathon's base URL, e.g. http://marathon.example.net:8080
(required unless --dry-run; credentials may go in it: https://USER:PASSWORD@HOST).
USAGE
}

die() {
    echo "$me: $*" >&2
    exit 1
}

dry_run=false
delegator_host=${DELEGATOR_HOST:-}
image=${GANGER_IMAGE:-}
target=""
while [ $# -gt 0 ]; do
    case "$1" in
    --dry-run) dry_run=true ;;
    --delegator-host)
        [ $# -ge 2 ] || die "--delegator-host needs a value"
        delegator_host=$2
        shift
        ;;
    --image)
        [ $# -ge 2 ] || die "--image needs a value"
        image=$2
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    delegator | workers | both)
        [ -z "$target" ] || die "give one of delegator, workers or both, not '$target' and '$1'"
        target=$1
        ;;
    *)
        usage >&2
        die "unknown argument '$1'"
        ;;
    esac
    shift
done

[ -n "$target" ] || {
    usage >&2
    die "say what to deploy: delegator, workers or both"
}
[ -n "$delegator_host" ] || die "set DELEGATOR_HOST (or --delegator-host) to the host the delegator runs on"
# Checked strictly so that the value needs no escaping in sed or in JSON.
[[ $delegator_host =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] ||
    die "DELEGATOR_HOST '$delegator_host' is not a host name or IPv4 address"
[ -n "$image" ] || die "set GANGER_IMAGE (or --image) to the image to run, e.g. registry.example.net:5000/ganger:1.0"
[[ $image =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]] || die "GANGER_IMAGE '$image' is not an image name"

marathon_url=${MARATHON_URL:-}
if [ -z "$marathon_url" ]; then
    $dry_run || die "set MARATHON_URL to Marathon's base URL, e.g. http://marathon.example.net:8080"
    # Printed as is: the dry run shows where the apps would go.
    # shellcheck disable=SC2016
    marathon_url='$MARATHON_URL'
fi
marathon_url=${marathon_url%/}

command -v curl >/dev/null 2>&1 || $dry_run || die "curl is needed (apt-get install curl)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Prints Marathon's answer in $1 (a file) on stderr: its message and details with jq if it is
# installed, else the body as it came.
print_answer() {
    if [ ! -s "$1" ]; then
        echo "(no body)" >&2
    elif command -v jq >/dev/null 2>&1 && jq -e 'type == "object" and has("message")' "$1" >/dev/null 2>&1; then
        jq -r '.message, (.details // [] | .[] | "  \(.path // ""): \(.errors // [] | join("; "))")' "$1" >&2
    else
        cat "$1" >&2
        echo >&2
    fi
}

# Sends one app definition file to Marathon (or prints it, with --dry-run).
deploy() {
    local file="$here/$1"
    local json="$scratch/$1"
    [ -r "$file" ] || die "cannot read $file"
    sed -e "s|$host_placeholder|$delegator_host|g" -e "s|$image_placeholder|$image|g" "$file" >"$json"
    if grep -q -e "$host_placeholder" -e "$image_placeholder" "$json"; then
        die "$file: a placeholder is left after filling it in"
    fi
    local id
    id=$(grep -m 1 -o '"id"[[:space:]]*:[[:space:]]*"[^"]*"' "$json" | sed 's/.*"\([^"]*\)"$/\1/') ||
        die "$file: no \"id\""
    local app_url="$marathon_url/v2/apps/${id#/}"

    if $dry_run; then
        echo "# $1: would POST $marathon_url/v2/apps, or PUT $app_url if Marathon has $id"
        cat "$json"
        return
    fi

    local answer="$scratch/answer" status
    status=$(curl --silent --show-error --output "$answer" --write-out '%{http_code}' \
        -H 'Accept: application/json' "$app_url") ||
        die "cannot reach Marathon at $marathon_url (GET $app_url failed)"
    local method url
    case "$status" in
    200) method=PUT url=$app_url ;;
    404) method=POST url=$marathon_url/v2/apps ;;
    *)
        echo "$me: GET $app_url: Marathon answered HTTP $status" >&2
        print_answer "$answer"
        exit 1
        ;;
    esac

    status=$(curl --silent --show-error --output "$answer" --write-out '%{http_code}' \
        -X "$method" -H 'Content-Type: application/json' -H 'Accept: application/json' \
        --data-binary "@$json" "$url") ||
        die "cannot reach Marathon at $marathon_url ($method $url failed)"
    case "$status" in
    2??) echo "$me: $method $url: HTTP $status, Marathon is deploying $id" ;;
    *)
        echo "$me: $method $url ($1): Marathon answered HTTP $status" >&2
        print_answer "$answer"
        exit 1
        ;;
    esac
}

case "$target" in
delegator) deploy delegator.json ;;
workers) deploy marathon-sample.json ;;
both)
    deploy delegator.json
    deploy marathon-sample.json
    ;;
esac
