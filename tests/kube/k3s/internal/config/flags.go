package config

import "opsbook/tests/kube/k3s/internal/flags"

// The flag tables follow k3s's (k3s: pkg/cli/cmds/server.go, agent.go, log.go,
// etcd_snapshot.go, secrets_encrypt.go, token.go). Every flag k3s accepts is accepted,
// so a config file valid for k3s is valid here; the Effect comments in config.go say
// which ones the test server acts on.

func s(name, short, def string, env ...string) flags.Flag {
	return flags.Flag{Name: name, Short: short, Kind: flags.String, Default: def, Env: env}
}
func b(name string, env ...string) flags.Flag {
	return flags.Flag{Name: name, Kind: flags.Bool, Default: "false", Env: env}
}
func i(name, def string, env ...string) flags.Flag {
	return flags.Flag{Name: name, Kind: flags.Int, Default: def, Env: env}
}
func d(name, def string) flags.Flag {
	return flags.Flag{Name: name, Kind: flags.Duration, Default: def}
}
func l(name, short string) flags.Flag {
	return flags.Flag{Name: name, Short: short, Kind: flags.Strings}
}

// logFlags are k3s's logging flags (k3s: pkg/cli/cmds/log.go).
func logFlags() []flags.Flag {
	return []flags.Flag{
		s("config", "c", DefaultConfigFile, "K3S_CONFIG_FILE"),
		b("debug", "K3S_DEBUG"),
		{Name: "v", Kind: flags.Int, Default: "0"},
		s("vmodule", "", ""),
		s("log", "l", ""),
		b("alsologtostderr"),
	}
}

// agentShared are the agent flags `k3s server` accepts too (k3s: pkg/cli/cmds/agent.go).
func agentShared() []flags.Flag {
	return []flags.Flag{
		s("node-name", "", "", "K3S_NODE_NAME"),
		b("with-node-id"),
		l("node-label", ""),
		l("node-taint", ""),
		s("image-credential-provider-bin-dir", "", "/var/lib/rancher/credentialprovider/bin"),
		s("image-credential-provider-config", "", "/var/lib/rancher/credentialprovider/config.yaml"),
		b("docker"),
		s("container-runtime-endpoint", "", ""),
		s("default-runtime", "", ""),
		s("image-service-endpoint", "", ""),
		b("disable-default-registry-endpoint"),
		b("nonroot-devices"),
		s("pause-image", "", "registry.k8s.io/pause:3.10.2"),
		s("snapshotter", "", "overlayfs"),
		s("private-registry", "", "/etc/rancher/k3s/registries.yaml"),
		l("airgap-extra-registry", ""),
		l("node-ip", "i"),
		l("node-external-ip", ""),
		l("node-internal-dns", ""),
		l("node-external-dns", ""),
		s("resolv-conf", "", "", "K3S_RESOLV_CONF"),
		s("flannel-iface", "", ""),
		s("flannel-conf", "", ""),
		s("flannel-cni-conf", "", ""),
		s("vpn-auth", "", "", "K3S_VPN_AUTH"),
		s("vpn-auth-file", "", "", "K3S_VPN_AUTH_FILE"),
		l("kubelet-arg", ""),
		l("kube-proxy-arg", ""),
		b("protect-kernel-defaults"),
		b("enable-pprof"),
		b("selinux", "K3S_SELINUX"),
		i("lb-server-port", "6444", "K3S_LB_SERVER_PORT"),
		b("prefer-bundled-bin"),
		b("rootless"),
	}
}

// ServerFlags is `k3s server`'s table.
func ServerFlags() []flags.Flag {
	t := logFlags()
	t = append(t,
		s("bind-address", "", ""),
		i("https-listen-port", "6443"),
		i("supervisor-port", "0", "K3S_SUPERVISOR_PORT"),
		i("apiserver-port", "0", "K3S_APISERVER_PORT"),
		s("apiserver-bind-address", "", "", "K3S_APISERVER_BIND_ADDRESS"),
		s("advertise-address", "", ""),
		i("advertise-port", "0"),
		l("tls-san", ""),
		flags.Flag{Name: "tls-san-security", Kind: flags.Bool, Default: "true"},
		s("data-dir", "d", "", "K3S_DATA_DIR"),
		l("cluster-cidr", ""),
		l("service-cidr", ""),
		s("service-node-port-range", "", "30000-32767"),
		l("cluster-dns", ""),
		s("cluster-domain", "", "cluster.local"),
		s("flannel-backend", "", "vxlan"),
		b("flannel-ipv6-masq"),
		b("flannel-external-ip"),
		s("egress-selector-mode", "", "agent"),
		s("servicelb-namespace", "", "kube-system"),
		s("write-kubeconfig", "o", "", "K3S_KUBECONFIG_OUTPUT"),
		s("write-kubeconfig-mode", "", "", "K3S_KUBECONFIG_MODE"),
		s("write-kubeconfig-group", "", "", "K3S_KUBECONFIG_GROUP"),
		s("write-kubeconfig-name", "", "default", "K3S_KUBECONFIG_NAME"),
		s("helm-job-image", "", ""),
		s("token", "t", "", "K3S_TOKEN"),
		s("token-file", "", "", "K3S_TOKEN_FILE"),
		s("agent-token", "", "", "K3S_AGENT_TOKEN"),
		s("agent-token-file", "", "", "K3S_AGENT_TOKEN_FILE"),
		s("server", "s", "", "K3S_URL"),
		b("cluster-init", "K3S_CLUSTER_INIT"),
		b("cluster-reset", "K3S_CLUSTER_RESET"),
		s("cluster-reset-restore-path", "", ""),
		l("kube-apiserver-arg", ""),
		l("etcd-arg", ""),
		l("kube-controller-manager-arg", ""),
		l("kube-scheduler-arg", ""),
		l("helm-controller-arg", ""),
		l("kube-cloud-controller-manager-arg", ""),
		b("kine-tls"),
		s("datastore-endpoint", "", "", "K3S_DATASTORE_ENDPOINT"),
		s("datastore-cafile", "", "", "K3S_DATASTORE_CAFILE"),
		s("datastore-certfile", "", "", "K3S_DATASTORE_CERTFILE"),
		s("datastore-keyfile", "", "", "K3S_DATASTORE_KEYFILE"),
		b("etcd-expose-metrics"),
		b("etcd-disable-snapshots"),
		s("etcd-snapshot-name", "", "etcd-snapshot"),
		s("etcd-snapshot-schedule-cron", "", "0 */12 * * *"),
		d("etcd-snapshot-reconcile-interval", "10m"),
		i("etcd-snapshot-retention", "5"),
		s("etcd-snapshot-dir", "", ""),
		b("etcd-snapshot-compress"),
		b("etcd-s3"),
		s("etcd-s3-endpoint", "", "s3.amazonaws.com"),
		s("etcd-s3-endpoint-ca", "", ""),
		b("etcd-s3-skip-ssl-verify"),
		s("etcd-s3-access-key", "", "", "AWS_ACCESS_KEY_ID"),
		s("etcd-s3-secret-key", "", "", "AWS_SECRET_ACCESS_KEY"),
		s("etcd-s3-session-token", "", "", "AWS_SESSION_TOKEN"),
		s("etcd-s3-bucket", "", ""),
		s("etcd-s3-bucket-lookup-type", "", ""),
		s("etcd-s3-region", "", "us-east-1"),
		s("etcd-s3-folder", "", ""),
		i("etcd-s3-retention", "5"),
		s("etcd-s3-proxy", "", ""),
		s("etcd-s3-config-secret", "", ""),
		b("etcd-s3-insecure"),
		d("etcd-s3-timeout", "5m"),
		s("default-local-storage-path", "", ""),
		l("disable", ""),
		b("disable-scheduler"),
		b("disable-cloud-controller"),
		b("disable-kube-proxy"),
		b("disable-network-policy"),
		b("disable-helm-controller"),
		b("disable-apiserver"),
		b("disable-controller-manager"),
		b("disable-etcd"),
		b("embedded-registry"),
		b("supervisor-metrics"),
		s("system-default-registry", "", "", "K3S_SYSTEM_DEFAULT_REGISTRY"),
		b("secrets-encryption"),
		s("secrets-encryption-provider", "", "aescbc"),
		b("disable-agent"),
		l("kube-controller-arg", ""),
		l("kube-cloud-controller-arg", ""),
	)
	return append(t, agentShared()...)
}

// AgentFlags is `k3s agent`'s table.
func AgentFlags() []flags.Flag {
	t := logFlags()
	t = append(t,
		s("token", "t", "", "K3S_TOKEN"),
		s("token-file", "", "", "K3S_TOKEN_FILE"),
		s("server", "s", "", "K3S_URL"),
		s("data-dir", "d", DefaultDataDir, "K3S_DATA_DIR"),
		s("bind-address", "", ""),
		b("disable-apiserver-lb"),
	)
	return append(t, agentShared()...)
}

// clientFlags are the flags of the commands that call a running server.
func clientFlags() []flags.Flag {
	return []flags.Flag{
		s("data-dir", "d", "", "K3S_DATA_DIR"),
		s("token", "t", "", "K3S_TOKEN"),
		s("server", "s", "https://127.0.0.1:6443", "K3S_URL"),
		b("debug", "K3S_DEBUG"),
	}
}

// SecretsEncryptFlags: every subcommand shares them; status adds -o, prepare/rotate/reencrypt
// add --force, reencrypt adds --skip (k3s: pkg/cli/cmds/secrets_encrypt.go).
func SecretsEncryptFlags() []flags.Flag {
	return append(clientFlags(),
		s("output", "o", "text"),
		flags.Flag{Name: "force", Short: "f", Kind: flags.Bool, Default: "false"},
		b("skip"),
	)
}

// TokenFlags for `k3s token rotate` (k3s: pkg/cli/cmds/token.go).
func TokenFlags() []flags.Flag {
	return append(clientFlags(), s("new-token", "", ""), s("kubeconfig", "", "", "KUBECONFIG"))
}

// EtcdSnapshotFlags (k3s: pkg/cli/cmds/etcd_snapshot.go): short names with the server's
// etcd-* names as aliases, so a server's config file applies.
func EtcdSnapshotFlags() []flags.Flag {
	alias := func(f flags.Flag, a string) flags.Flag { f.Aliases = []string{a}; return f }
	return []flags.Flag{
		b("debug", "K3S_DEBUG"),
		s("config", "c", DefaultConfigFile, "K3S_CONFIG_FILE"),
		s("log", "l", ""),
		b("alsologtostderr"),
		s("node-name", "", "", "K3S_NODE_NAME"),
		s("data-dir", "d", "", "K3S_DATA_DIR"),
		s("etcd-token", "t", ""),
		s("etcd-server", "s", "https://127.0.0.1:6443"),
		alias(s("dir", "", ""), "etcd-snapshot-dir"),
		s("name", "", "on-demand"),
		alias(b("snapshot-compress"), "etcd-snapshot-compress"),
		alias(i("snapshot-retention", "5"), "etcd-snapshot-retention"),
		alias(b("s3"), "etcd-s3"),
		alias(s("s3-endpoint", "", "s3.amazonaws.com"), "etcd-s3-endpoint"),
		alias(s("s3-endpoint-ca", "", ""), "etcd-s3-endpoint-ca"),
		alias(b("s3-skip-ssl-verify"), "etcd-s3-skip-ssl-verify"),
		alias(s("s3-access-key", "", "", "AWS_ACCESS_KEY_ID"), "etcd-s3-access-key"),
		alias(s("s3-secret-key", "", "", "AWS_SECRET_ACCESS_KEY"), "etcd-s3-secret-key"),
		alias(s("s3-session-token", "", "", "AWS_SESSION_TOKEN"), "etcd-s3-session-token"),
		alias(s("s3-bucket", "", ""), "etcd-s3-bucket"),
		alias(s("s3-bucket-lookup-type", "", ""), "etcd-s3-bucket-lookup-type"),
		alias(s("s3-region", "", "us-east-1"), "etcd-s3-region"),
		alias(i("s3-retention", "5"), "etcd-s3-retention"),
		alias(s("s3-folder", "", ""), "etcd-s3-folder"),
		alias(s("s3-proxy", "", ""), "etcd-s3-proxy"),
		alias(s("s3-config-secret", "", ""), "etcd-s3-config-secret"),
		alias(b("s3-insecure"), "etcd-s3-insecure"),
		alias(d("s3-timeout", "5m"), "etcd-s3-timeout"),
		s("output", "o", ""),
		{Name: "etcd-list-format", Kind: flags.String, Default: ""},
	}
}
