package server

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdKV adapts an etcd client to bootstrap.KV.
type etcdKV struct{ c *clientv3.Client }

func (k etcdKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	resp, err := k.c.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return nil, false, err
	}
	return resp.Kvs[0].Value, true, nil
}

func (k etcdKV) List(ctx context.Context, prefix string) (map[string][]byte, error) {
	resp, err := k.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out, nil
}

func (k etcdKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := k.c.Put(ctx, key, string(value))
	return err
}

func (k etcdKV) Create(ctx context.Context, key string, value []byte) (bool, error) {
	resp, err := k.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value))).
		Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

func (k etcdKV) Delete(ctx context.Context, key string) error {
	_, err := k.c.Delete(ctx, key)
	return err
}
