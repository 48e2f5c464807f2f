# Set-up shared by the test scripts (sourced): a temporary folder $tmp removed on exit, and
# fail() printing a FAIL line and counting it in $failures (each script reports and exits on it).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
