// Package wiring builds strata's object graph on a root directory: the blob
// store, the metadata database over it, and (later) snapshotters. stratad and
// the CLI's embedded mode both open a root through it.
package wiring

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-oci/strata/content/local"
	"github.com/strata-oci/strata/metadata"
)

// Config says where the store lives and how it behaves.
type Config struct {
	Root   string
	Logger *slog.Logger
	// GCDelay is the debounce of scheduled collections; zero means 100ms.
	GCDelay time.Duration
}

// Store is an open root.
type Store struct {
	Root  string
	Blobs *local.Store
	DB    *metadata.DB
}

// Open opens (creating when needed) the store at cfg.Root.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, fmt.Errorf("store root must not be empty")
	}
	if err := os.MkdirAll(cfg.Root, 0o711); err != nil {
		return nil, fmt.Errorf("store root %s: %w", cfg.Root, err)
	}
	blobs, err := local.New(filepath.Join(cfg.Root, "content"))
	if err != nil {
		return nil, err
	}
	var opts []metadata.Opt
	if cfg.Logger != nil {
		opts = append(opts, metadata.WithLogger(cfg.Logger))
	}
	if cfg.GCDelay != 0 {
		opts = append(opts, metadata.WithGCDelay(cfg.GCDelay))
	}
	db, err := metadata.Open(ctx, filepath.Join(cfg.Root, "metadata.db"), blobs, opts...)
	if err != nil {
		return nil, err
	}
	// Only now, holding the database lock, is this process the owner.
	if err := blobs.RemoveBrokenIngests(); err != nil {
		db.Close()
		return nil, err
	}
	return &Store{Root: cfg.Root, Blobs: blobs, DB: db}, nil
}

// Close closes the store, running a pending garbage collection first.
func (s *Store) Close() error { return s.DB.Close() }
