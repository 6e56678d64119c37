package snapshot

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
)

// Schedule takes snapshots named name on the cron spec and prunes to retention, on every
// server (k3s: pkg/etcd/etcd.go setSnapshotFunction; cron.SkipIfStillRunning, jitter < 5 s).
func (m *Manager) Schedule(ctx context.Context, spec, name string, retention int, compress bool) error {
	c := cron.New(cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	_, err := c.AddFunc(spec, func() {
		time.Sleep(time.Duration(rand.Int64N(int64(5 * time.Second))))
		if _, err := m.Save(ctx, "", name, compress); err != nil {
			logrus.Errorf("Failed to take scheduled snapshot: %v", err)
			return
		}
		if _, err := m.Prune("", name, retention); err != nil {
			logrus.Errorf("Failed to apply snapshot retention: %v", err)
		}
	})
	if err != nil {
		return err
	}
	c.Start()
	go func() { <-ctx.Done(); c.Stop() }()
	return nil
}
