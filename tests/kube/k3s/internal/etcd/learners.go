package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Node condition set by the etcd leader (k3s: pkg/etcd/etcd.go setEtcdStatusCondition).
const (
	ConditionEtcdIsVoter = "EtcdIsVoter"
	annEtcdName          = "etcd.k3s.cattle.io/node-name"
	etcdRoleSelector     = "node-role.kubernetes.io/etcd=true"
	learnerMaxStall      = 5 * time.Minute
	manageInterval       = 15 * time.Second
	heartbeatRefresh     = 5 * time.Minute
)

type progress struct {
	id         uint64
	applied    uint64
	lastChange time.Time
}

// Learners promotes learners and keeps each server node's EtcdIsVoter condition, on the
// raft leader only, every 15 s (k3s: pkg/etcd/etcd.go manageLearners, trackLearnerProgress;
// a learner that makes no progress for 5 minutes is removed).
type Learners struct {
	Client   *clientv3.Client
	Kube     kubernetes.Interface
	Endpoint string // the local member's client URL
	TLS      TLS
	progress map[string]*progress
}

// Run loops until ctx ends.
func (l *Learners) Run(ctx context.Context) {
	l.progress = map[string]*progress{}
	t := time.NewTicker(manageInterval)
	defer t.Stop()
	for {
		if err := l.tick(ctx); err != nil {
			logrus.Debugf("etcd learner management: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *Learners) tick(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := l.Client.Status(cctx, l.Endpoint)
	if err != nil {
		return err
	}
	if st.Header.MemberId != st.Leader {
		return nil
	}
	members, err := l.Client.MemberList(cctx)
	if err != nil {
		return err
	}
	for _, m := range members.Members {
		if m.IsLearner {
			l.trackLearner(cctx, m.ID, m.Name, m.ClientURLs)
		}
	}
	members, err = l.Client.MemberList(cctx)
	if err != nil {
		return err
	}
	return l.setConditions(cctx, members.Members)
}

func (l *Learners) trackLearner(ctx context.Context, id uint64, name string, urls []string) {
	if _, err := l.Client.MemberPromote(ctx, id); err == nil {
		logrus.Infof("Promoted learner %s", name)
		delete(l.progress, name)
		return
	} else {
		logrus.Debugf("Unable to promote learner %s: %v", name, err)
	}
	p, ok := l.progress[name]
	if !ok || p.id != id {
		p = &progress{id: id, lastChange: time.Now()}
		l.progress[name] = p
	}
	if len(urls) > 0 {
		if st, err := l.Client.Status(ctx, urls[0]); err == nil && st.RaftAppliedIndex > p.applied {
			p.applied, p.lastChange = st.RaftAppliedIndex, time.Now()
			return
		}
	}
	stalled := time.Since(p.lastChange)
	logrus.Warnf("Learner %s stalled at RaftAppliedIndex=%d for %s", name, p.applied, stalled.Round(time.Second))
	if stalled > learnerMaxStall {
		if _, err := l.Client.MemberRemove(ctx, id); err == nil {
			logrus.Warnf("Removed learner %s from etcd cluster", name)
			delete(l.progress, name)
		}
	}
}

type condition struct {
	status          corev1.ConditionStatus
	reason, message string
}

func (l *Learners) memberCondition(ctx context.Context, learner bool, urls []string) condition {
	if len(urls) > 0 {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := l.Client.Status(sctx, urls[0])
		cancel()
		if err != nil {
			return condition{corev1.ConditionFalse, "Unhealthy", fmt.Sprintf("failed to check etcd member status: %v", err)}
		}
		if len(st.Errors) > 0 {
			return condition{corev1.ConditionFalse, "Unhealthy", "etcd member has status errors: " + strings.Join(st.Errors, ",")}
		}
	}
	if learner {
		return condition{corev1.ConditionFalse, "MemberIsLearner", "Node has not been promoted to voting member of the etcd cluster"}
	}
	return condition{corev1.ConditionTrue, "MemberNotLearner", "Node is a voting member of the etcd cluster"}
}

func (l *Learners) setConditions(ctx context.Context, members []*memberT) error {
	nodes, err := l.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: etcdRoleSelector})
	if err != nil {
		return err
	}
	byName := map[string]*memberT{}
	for _, m := range members {
		byName[m.Name] = m
	}
	for i := range nodes.Items {
		node := &nodes.Items[i]
		var c condition
		if m, ok := byName[node.Annotations[annEtcdName]]; ok {
			c = l.memberCondition(ctx, m.IsLearner, m.ClientURLs)
		} else {
			c = condition{corev1.ConditionFalse, "NotAMember", "Node is not a member of the etcd cluster"}
		}
		if err := setCondition(ctx, l.Kube, node, c); err != nil {
			logrus.Debugf("Unable to set etcd status condition on node %s: %v", node.Name, err)
		}
	}
	return nil
}

func setCondition(ctx context.Context, kube kubernetes.Interface, node *corev1.Node, c condition) error {
	now := metav1.Now()
	cond := corev1.NodeCondition{Type: ConditionEtcdIsVoter, Status: c.status, Reason: c.reason, Message: c.message,
		LastHeartbeatTime: now, LastTransitionTime: now}
	var existing *corev1.NodeCondition
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == ConditionEtcdIsVoter {
			existing = &node.Status.Conditions[i]
		}
	}
	if existing == nil {
		logrus.Infof("Adding node %s etcd status condition", node.Name)
	} else if existing.Status == c.status && existing.Reason == c.reason && existing.Message == c.message {
		if time.Since(existing.LastHeartbeatTime.Time) < heartbeatRefresh {
			return nil
		}
		cond.LastTransitionTime = existing.LastTransitionTime
	}
	// PatchStatus sends a strategic merge patch: conditions merge by type, so kwok's
	// heartbeats keep this one.
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{cond}}})
	_, err := kube.CoreV1().Nodes().PatchStatus(ctx, node.Name, patch)
	return err
}
