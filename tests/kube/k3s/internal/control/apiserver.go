// Package control runs the upstream Kubernetes control-plane components in this
// process, as k3s does (k3s: pkg/daemons/executor/embed.go runs kube-apiserver,
// kube-controller-manager and kube-scheduler as goroutines of the k3s process).
//
// k3s builds them from its fork of Kubernetes, whose commands take a stop channel and
// hand back the API server's handler. Upstream's cobra commands install process-wide
// signal handlers instead (genericapiserver.SetupSignalContext may be called only once
// per process), so the runners below call the same exported building blocks the upstream
// commands call (options, Complete, Validate, NewConfig, CreateServerChain, Run) with a
// context of ours.
package control

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	"k8s.io/component-base/logs"
	apiapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apioptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// APIServer is a running kube-apiserver.
type APIServer struct {
	// Handler is the API server's full handler chain (authentication included): the
	// supervisor serves it on :6443 for every path it does not handle itself, as k3s does
	// (k3s: pkg/server/router.go, the apiserver as the router's NotFoundHandler).
	Handler http.Handler
	// Done receives Run's result when the server stops.
	Done <-chan error
}

func parse(name string, sets cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	globalflag.AddGlobalFlags(sets.FlagSet("global"), name, logs.SkipLoggingConfigurationFlags())
	for _, f := range sets.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// StartAPIServer parses kube-apiserver flags, builds the server chain and starts serving
// on its own secure port (k3s: 127.0.0.1:6444) in the background.
func StartAPIServer(ctx context.Context, args []string) (*APIServer, error) {
	s := apioptions.NewServerRunOptions()
	if err := parse("kube-apiserver", s.Flags(), args); err != nil {
		return nil, err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	// As upstream's PersistentPreRunE: loopback clients do not log self-issued warnings.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, utilerrors.NewAggregate(errs)
	}
	config, err := apiapp.NewConfig(completed)
	if err != nil {
		return nil, err
	}
	cc, err := config.Complete()
	if err != nil {
		return nil, err
	}
	chain, err := apiapp.CreateServerChain(cc)
	if err != nil {
		return nil, err
	}
	prepared, err := chain.PrepareRun()
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- prepared.Run(ctx) }()
	return &APIServer{Handler: chain.GenericAPIServer.Handler, Done: done}, nil
}
