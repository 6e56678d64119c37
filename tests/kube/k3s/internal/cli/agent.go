package cli

import (
	"fmt"
	"os"
	"strings"

	"opsbook/tests/kube/k3s/internal/agent"
	"opsbook/tests/kube/k3s/internal/config"
)

// Agent is `k3s agent`.
func Agent(args []string) error {
	set, err := parse("agent", config.AgentFlags(), args)
	if err != nil {
		return err
	}
	if len(set.Args()) > 0 {
		return fmt.Errorf("agent: unexpected arguments %q", set.Args())
	}
	if err := setupLogging(set); err != nil {
		return err
	}
	tok := set.String("token")
	if tok == "" && set.String("token-file") != "" {
		data, err := os.ReadFile(set.String("token-file"))
		if err != nil {
			return err
		}
		tok = strings.TrimSpace(string(data))
	}
	name := strings.ToLower(set.String("node-name"))
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return err
		}
	}
	ips := set.Strings("node-ip", true)
	if len(ips) == 0 {
		return fmt.Errorf("agent: --node-ip is required by the opsbook k3s test server")
	}
	ctx, cancel := signalContext()
	defer cancel()
	return agent.Run(ctx, agent.Config{
		ServerURL: set.String("server"), Token: tok, DataDir: set.String("data-dir"), NodeName: strings.ToLower(name),
		NodeIP: ips[0], Args: append([]string{"agent"}, args...), Labels: set.Strings("node-label", false), Taints: set.Strings("node-taint", false),
		ProtectKernelDefaults: set.Bool("protect-kernel-defaults"),
	}, NotifyReady)
}
