package control

import (
	"context"

	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// StartControllerManager runs kube-controller-manager in the background; its result
// (it returns only on error) goes to the returned channel.
func StartControllerManager(ctx context.Context, args []string) (<-chan error, error) {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	known, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	sets := s.Flags(known, disabled, aliases)
	s.ParsedFlags = &sets
	if err := parse("kube-controller-manager", sets, args); err != nil {
		return nil, err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	c, err := s.Config(ctx, known, disabled, aliases)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- kcmapp.Run(ctx, c.Complete()) }()
	return done, nil
}

// StartScheduler runs kube-scheduler in the background.
func StartScheduler(ctx context.Context, args []string) (<-chan error, error) {
	opts := schedoptions.NewOptions()
	if err := parse("kube-scheduler", *opts.Flags, args); err != nil {
		return nil, err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	cc, sched, err := schedapp.Setup(ctx, opts)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- schedapp.Run(ctx, cc, sched) }()
	return done, nil
}
