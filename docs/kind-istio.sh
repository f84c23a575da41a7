#!/usr/bin/env bash
# kubectl mtlscope end to end on kind with Istio's bookinfo, as a first run on a real cluster
# goes: the agent uploaded into a busybox helper (docs/kubernetes.md, "End to end on a kind
# cluster", says what it needs and what to expect). Run from anywhere in a checkout.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
kind create cluster --name mtlscope

# The plugin as a release archive lays it out: kubectl-mtlscope with the static agent for the
# nodes' architecture beside it, which the plugin uploads into a stock busybox helper. No image
# is built or loaded into kind.
cargo build --release --bin kubectl-mtlscope --bin mtlscope
agent=$(.ci/build-agent | tail -n 1)                              # the static agent's path
arch=$(kubectl get nodes -o jsonpath='{.items[0].status.nodeInfo.architecture}')
bin="$PWD/target/kind-bin"
mkdir -p "$bin"
cp "${CARGO_TARGET_DIR:-target}/release/kubectl-mtlscope" "${CARGO_TARGET_DIR:-target}/release/mtlscope" "$bin/"
cp "$agent" "$bin/mtlscope-agent-linux-$arch"
export PATH="$bin:$PATH"
kubectl plugin list | grep kubectl-mtlscope

istioctl install -y --set profile=minimal
kubectl create namespace bookinfo
kubectl label namespace bookinfo istio-injection=enabled
ISTIO=$(dirname "$(dirname "$(command -v istioctl)")")      # the unpacked Istio release
kubectl -n bookinfo apply -f "$ISTIO/samples/bookinfo/platform/kube/bookinfo.yaml"
kubectl -n bookinfo wait --for=condition=Ready pods --all --timeout=300s

# Mesh-wide STRICT, one workload back to PERMISSIVE on 9080.
kubectl apply -f - <<'YAML'
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: ratings-permissive, namespace: bookinfo }
spec:
  selector: { matchLabels: { app: ratings } }
  portLevelMtls: { "9080": { mode: PERMISSIVE } }
YAML

POD=$(kubectl -n bookinfo get pod -l app=reviews,version=v1 -o jsonpath='{.items[0].metadata.name}')
mtlscope policy explain --cluster -n bookinfo --pod "$POD" --port 9080            # STRICT, mesh level

# The plugin: the helper pod it would create, then a 30 s capture in every reviews pod while
# productpage calls them, and a plaintext request from outside the mesh.
kubectl mtlscope sniff deploy/reviews-v1 -n bookinfo --dry-run     # image: busybox, the upload, the agent
kubectl mtlscope sniff deploy/reviews-v1 -n bookinfo --dry-run -o json \
    | kubectl create --dry-run=server -f -          # the API server accepts the helper spec
kubectl create namespace outside
kubectl -n outside run curl --image=curlimages/curl --restart=Never --command -- sleep 3600
kubectl -n outside wait --for=condition=Ready pod/curl --timeout=120s
( sleep 5
  for _ in $(seq 20); do kubectl -n bookinfo exec deploy/ratings-v1 -c ratings -- \
      curl -s productpage:9080/productpage >/dev/null; done
  kubectl -n outside exec curl -- curl -s -m 3 reviews.bookinfo:9080/reviews/0 || true ) &
kubectl mtlscope sniff -l app=reviews -n bookinfo --duration 30s -o jsonl > reviews.jsonl
wait
jq -r 'select(.verdict) | [.kubernetes.client_pod // .client.ip, .kubernetes.server_pod, .verdict,
       .kubernetes.policy.expected_mode, (.kubernetes.policy.finding.severity // "-")] | @tsv' reviews.jsonl
kubectl get pods -A -l app.kubernetes.io/managed-by=kubectl-mtlscope    # nothing left
kubectl mtlscope cleanup -A

# The same traffic captured on the node and judged offline, for comparison.
docker exec mtlscope-control-plane sh -c 'apt-get update -qq && apt-get install -y -qq tcpdump'
docker exec mtlscope-control-plane timeout 30 tcpdump -i any -U -s 0 -w - tcp > bookinfo.pcap &
for _ in $(seq 20); do kubectl -n bookinfo exec deploy/ratings-v1 -c ratings -- curl -s productpage:9080/productpage >/dev/null; done
wait
mtlscope analyze bookinfo.pcap --cluster
mtlscope check bookinfo.pcap --cluster --require policy --exclude 'port 15020 or port 15021 or port 53'
kind delete cluster --name mtlscope
