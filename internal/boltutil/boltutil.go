// Package boltutil encodes the small values strata keeps in bbolt (times,
// integers, string maps) the same way in every database: the metadata
// store's and each snapshotter's.
package boltutil

import (
	"encoding/binary"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// PutTime stores t (as UTC) under key.
func PutTime(b *bolt.Bucket, key []byte, t time.Time) error {
	v, err := t.UTC().MarshalBinary()
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

// ReadTime reads a time stored by PutTime; zero when absent.
func ReadTime(b *bolt.Bucket, key []byte) time.Time {
	var t time.Time
	if v := b.Get(key); v != nil {
		_ = t.UnmarshalBinary(v)
	}
	return t
}

// PutInt stores n as a varint under key.
func PutInt(b *bolt.Bucket, key []byte, n int64) error {
	buf := make([]byte, binary.MaxVarintLen64)
	return b.Put(key, buf[:binary.PutVarint(buf, n)])
}

// ReadInt reads an integer stored by PutInt; zero when absent.
func ReadInt(b *bolt.Bucket, key []byte) int64 {
	n, _ := binary.Varint(b.Get(key))
	return n
}

// ReadMap copies the string map in bucket name under b (bbolt's slices die
// with the transaction); nil when absent or empty.
func ReadMap(b *bolt.Bucket, name []byte) map[string]string {
	mb := b.Bucket(name)
	if mb == nil {
		return nil
	}
	out := map[string]string{}
	_ = mb.ForEach(func(k, v []byte) error {
		out[string(k)] = string(v)
		return nil
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// PutMap writes m as a new bucket name under b; nothing when m is empty.
func PutMap(b *bolt.Bucket, name []byte, m map[string]string) error {
	if len(m) == 0 {
		return nil
	}
	mb, err := b.CreateBucket(name)
	if err != nil {
		return err
	}
	for k, v := range m {
		if err := mb.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// ReplaceMap replaces the bucket name under b with m.
func ReplaceMap(b *bolt.Bucket, name []byte, m map[string]string) error {
	if err := b.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	return PutMap(b, name, m)
}
