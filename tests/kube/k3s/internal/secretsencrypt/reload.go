package secretsencrypt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The kube-apiserver's automatic-reload metrics k3s polls (k3s: pkg/secretsencrypt/config.go
// GetEncryptionConfigMetrics, WaitForEncryptionConfigReload: every 5 s, up to 120 s).
const (
	reloadTimeMetric  = "apiserver_encryption_config_controller_automatic_reload_last_timestamp_seconds"
	reloadTotalMetric = "apiserver_encryption_config_controller_automatic_reloads_total"
)

func (c *Controller) scrape(ctx context.Context) (success float64, ts float64, foundTime, foundTotal bool, err error) {
	text, err := c.Metrics(ctx)
	if err != nil {
		return 0, 0, false, false, err
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return 0, 0, false, false, err
	}
	if f, ok := families[reloadTimeMetric]; ok && len(f.Metric) > 0 {
		ts, foundTime = f.Metric[0].GetGauge().GetValue(), true
	}
	if f, ok := families[reloadTotalMetric]; ok {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "status" && l.GetValue() == "success" {
					success, foundTotal = m.GetCounter().GetValue(), true
				}
			}
		}
	}
	return success, ts, foundTime, foundTotal, nil
}

// reloadMetrics reads the baseline; on the first call absent metrics count as zero.
func (c *Controller) reloadMetrics(ctx context.Context, initial bool) (float64, float64, error) {
	success, ts, okTime, okTotal, err := c.scrape(ctx)
	if err != nil {
		return 0, 0, err
	}
	if initial && !okTime && !okTotal {
		return 0, 0, nil
	}
	return success, ts, nil
}

func (c *Controller) waitForReload(ctx context.Context, baseSuccess, baseTime float64) error {
	timeout := c.ReloadTimeout
	if timeout == 0 {
		timeout = 120 * time.Second
	}
	var lastSuccess, lastTime float64
	var lastFailure error
	err := wait.PollUntilContextTimeout(ctx, 5*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		success, ts, okTime, okTotal, err := c.scrape(ctx)
		if err != nil {
			lastFailure = err
			return false, nil
		}
		switch {
		case !okTime:
			lastFailure = errors.New("encryption config time metric not found")
			return false, nil
		case !okTotal:
			lastFailure = errors.New("encryption config total metric not found")
			return false, nil
		}
		lastSuccess, lastTime = success, ts
		if ts > float64(time.Now().Unix())+1 {
			return false, errors.New("encryption reload time is incorrectly ahead of current time")
		}
		if success > baseSuccess && ts > baseTime {
			logrus.Infof("encryption config reloaded successfully %d times", int(success-baseSuccess))
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		if lastFailure != nil {
			logrus.Debugf("last reload check failure: %v", lastFailure)
		}
		return fmt.Errorf("%w: apiserver has not reloaded encryption configuration (reload success: %d/%d, reload timestamp %d/%d)",
			err, int(lastSuccess), int(baseSuccess), int64(lastTime), int64(baseTime))
	}
	return nil
}
