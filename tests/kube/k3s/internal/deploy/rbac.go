package deploy

// KwokRBAC lets the agents' kwok, which plays the kubelet as system:node:<name>, list and
// watch what kwok's informers list (node leases, pods, nodes). A kubelet does not need
// this; kwok's controllers do. It is the test server's own, not in k3s.
const KwokRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: opsbook:k3s-test-server:kwok
  labels: {opsbook.test/k3s-test-server: "true"}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [pods, nodes]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: opsbook:k3s-test-server:kwok
  labels: {opsbook.test/k3s-test-server: "true"}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: opsbook:k3s-test-server:kwok
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: system:nodes
`
