#!/usr/bin/env bash
# The system packages the test suite needs, installed when missing; run by `make test` (and so by .ci/run) before
# pytest. As root with apt-get it installs them; otherwise it stops (exit 1) before any test runs, naming the
# packages, the command that installs them and the tests that need them. A test is never skipped for want of them.
#
# TEST_DEPS_ROOT (default: empty, i.e. /) is the folder the files below are looked up in; the tests of this script
# point it at an empty folder to see the "missing" branches without uninstalling anything.
set -euo pipefail

ROOT="${TEST_DEPS_ROOT:-}"
# file the tests run | Debian package that provides it | the test that needs it
NEEDS=(
    "/usr/bin/chromium|chromium|tests/test_serve.py::test_the_page_shows_overlay_heatmap_and_classes"
    "/usr/bin/chromedriver|chromium-driver|tests/test_serve.py::test_the_page_shows_overlay_heatmap_and_classes"
)

missing() {
    local need file pkg test
    for need in "${NEEDS[@]}"; do
        IFS='|' read -r file pkg test <<<"$need"
        [ -x "$ROOT$file" ] || echo "$pkg|$test|$file"
    done
}

mapfile -t gaps < <(missing)
[ ${#gaps[@]} -eq 0 ] && exit 0

packages=() tests=()
for gap in "${gaps[@]}"; do
    IFS='|' read -r pkg test file <<<"$gap"
    packages+=("$pkg")
    [[ " ${tests[*]} " == *" $test "* ]] || tests+=("$test")
done
command="apt-get update && apt-get install -y ${packages[*]}"

uid=$(id -u)
if [ "$uid" != 0 ] || ! command -v apt-get > /dev/null; then
    why=$([ "$uid" != 0 ] && echo "not running as root" || echo "apt-get not found")
    {
        echo "make test: the system packages ${packages[*]} are missing and cannot be installed here ($why)."
        echo "  needed by: ${tests[*]}"
        echo "  install them (Debian/Ubuntu): sudo sh -c '$command'"
        echo "  then run make test again."
    } >&2
    exit 1
fi

echo "make test: installing ${packages[*]} (needed by ${tests[*]})"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" > /dev/null
mapfile -t still < <(missing)
if [ ${#still[@]} -ne 0 ]; then
    echo "make test: apt-get install ${packages[*]} ran but ${still[*]} is still missing; install it by hand" >&2
    exit 1
fi
