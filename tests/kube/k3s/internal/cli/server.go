package cli

import (
	"fmt"

	"github.com/sirupsen/logrus"

	"opsbook/tests/kube/k3s/internal/config"
	"opsbook/tests/kube/k3s/internal/server"
)

// Server is `k3s server`.
func Server(args []string) error {
	set, err := parse("server", config.ServerFlags(), args)
	if err != nil {
		return err
	}
	if len(set.Args()) > 0 {
		return fmt.Errorf("server: unexpected arguments %q", set.Args())
	}
	if err := setupLogging(set); err != nil {
		return err
	}
	cfg, err := config.FromServerFlags(set, append([]string{"server"}, args...))
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	if err := server.Run(ctx, cfg, NotifyReady); err != nil {
		// Fatal here, before the deferred cancel would start the shutdown.
		logrus.Fatalf("Error: %v", err)
	}
	return nil
}
