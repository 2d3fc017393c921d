#!/usr/bin/env bash
# make demo: a real pipeline through both simulators.
#
# Starts the Kubernetes simulator (HTTPS, bearer token) and the coordinator simulator (GitLab
# dialect) on loopback, registers a runner with `alloy-runner register`, queues the demo
# project's two-stage pipeline twice (the second run restores the cache the first one saved),
# runs `alloy-runner run-single`, and prints each job's log as the coordinator received it.
# Everything it starts is stopped on exit; its files live in one temporary folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD

echo "==> building the runner and the simulators"
cargo build -q --workspace --bins
bin=$top/target/debug

work=$(mktemp -d "${TMPDIR:-/tmp}/alloy-demo.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until FILE has a line matching PATTERN and prints the line's last word.
wait_for_line() {
    local file=$1 pattern=$2
    for _ in $(seq 1 200); do
        if line=$(grep -m1 "$pattern" "$file" 2>/dev/null); then
            echo "${line##* }"
            return 0
        fi
        sleep 0.05
    done
    echo "demo: timed out waiting for '$pattern' in $file:" >&2
    cat "$file" >&2
    return 1
}

echo "==> preparing the demo project (a git repository)"
cp -r fixtures/demo/project "$work/wordcount"
git -C "$work/wordcount" init -q -b main
git -C "$work/wordcount" add -A
git -C "$work/wordcount" -c user.name=demo -c user.email=demo@localhost commit -qm "wordcount"

echo "==> starting the Kubernetes simulator"
SIM_ADDR=127.0.0.1:0 SIM_TOKEN=demo-kube-token SIM_NAMESPACE=demo \
    SIM_KUBECONFIG="$work/kubeconfig" "$bin/kube-sim" >"$work/kube-sim.out" 2>&1 &
pids+=($!)
kube_url=$(wait_for_line "$work/kube-sim.out" "kube-sim serving")
echo "    $kube_url"

echo "==> starting the coordinator simulator (GitLab dialect, the pipeline runs twice)"
COORDINATOR_SIM_ADDR=127.0.0.1:0 "$bin/coordinator-sim" --dialect gitlab \
    --registration-token demo-registration-token \
    --pipeline "$work/wordcount/.alloy-ci.json" --repo "$work/wordcount" --runs 2 \
    --record-dir "$work/record" >"$work/coordinator.out" 2>&1 &
pids+=($!)
coordinator_url=$(wait_for_line "$work/coordinator.out" "coordinator-sim listening on")
echo "    $coordinator_url"

echo "==> registering a runner"
"$bin/alloy-runner" --config "$work/config.toml" register \
    --url "$coordinator_url" --registration-token demo-registration-token --name demo \
    --template-config fixtures/demo/runner-template.toml \
    --kubernetes-host "$kube_url" --kubernetes-ca-file "$top/fixtures/kube-sim/tls/ca.crt" \
    --kubernetes-bearer-token demo-kube-token
"$bin/alloy-runner" --config "$work/config.toml" list

echo "==> running the jobs (alloy-runner run-single --max-builds 4)"
"$bin/alloy-runner" --config "$work/config.toml" run-single --max-builds 4 --wait-timeout 60

# The coordinator simulator writes each job's record once its final state arrived; wait for
# all four (run-single returns as soon as the fourth final update was accepted).
expected=4
for _ in $(seq 1 100); do
    [ "$(ls "$work"/record/job-*.txt 2>/dev/null | wc -l)" -ge "$expected" ] && break
    sleep 0.1
done

echo
echo "==> the jobs as the coordinator received them"
for summary in $(ls "$work"/record/job-*.txt | sort -V); do
    log=${summary%.txt}.log
    echo "----------------------------------------------------------------------"
    cat "$summary"
    echo "----------------------------------------------------------------------"
    cat "$log"
    echo
done

failed=$(grep -L "reported success" "$work"/record/job-*.txt || true)
recorded=$(ls "$work"/record/job-*.txt 2>/dev/null | wc -l)
if [ "$recorded" -ne "$expected" ]; then
    failed="only $recorded of $expected jobs reached the coordinator"
fi
# Deleted pods get their grace period to stop; wait for them to be gone (asked with kubectl,
# a real Kubernetes client, when it is installed).
if command -v kubectl >/dev/null 2>&1; then
    for _ in $(seq 1 100); do
        left=$(kubectl --kubeconfig "$work/kubeconfig" --request-timeout=5s get pods -n demo -o name || true)
        [ -z "$left" ] && break
        sleep 0.1
    done
    echo "==> pods left in the cluster: ${left:-none}"
fi
if [ -n "$failed" ]; then
    echo "demo: some jobs did not succeed: $failed" >&2
    exit 1
fi
echo "==> demo done: every job succeeded"
