package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/encoding"

	"github.com/strata-oci/strata/progress"
)

// The daemon's jobs service is strata's own, not containerd's: one
// bidirectional stream per job, its messages JSON (gRPC content-subtype
// "strata-json"), so that requests stay the plain structs above and need
// no generated code.
const (
	// ServiceName is the gRPC service.
	ServiceName = "strata.services.jobs.v1.Jobs"
	// RunMethod is its only method, a bidirectional stream: the client
	// sends a Start frame, then input data and credential answers; the
	// server sends progress, credential questions, output data and, last,
	// the result (or the job's error as the stream's status).
	RunMethod = "/" + ServiceName + "/Run"
	// Codec is the content-subtype of the jobs service.
	Codec = "strata-json"
)

// ClientFrame is a message from the client.
type ClientFrame struct {
	Start *Request `json:"start,omitempty"`
	// Credential answers the server's question for a host.
	Credential *CredentialAnswer `json:"credential,omitempty"`
	// Data is the next piece of the import archive; EOF ends it.
	Data []byte `json:"data,omitempty"`
	EOF  bool   `json:"eof,omitempty"`
	// Cancel asks the job to stop (the user pressed Ctrl-C). A client that
	// just goes away leaves a long job running.
	Cancel bool `json:"cancel,omitempty"`
}

// CredentialAnswer is the client's credentials for Host; Error says why
// there are none to give.
type CredentialAnswer struct {
	Host   string `json:"host"`
	User   string `json:"user,omitempty"`
	Secret string `json:"secret,omitempty"`
	Error  string `json:"error,omitempty"`
}

// ServerFrame is a message from the daemon.
type ServerFrame struct {
	Progress []Update `json:"progress,omitempty"`
	// Credential asks for the credentials of a registry host.
	Credential string `json:"credential,omitempty"`
	Warn       string `json:"warn,omitempty"`
	// Data is the next piece of the export archive.
	Data   []byte  `json:"data,omitempty"`
	Result *Result `json:"result,omitempty"`
}

// Update is a progress.Update on the wire.
type Update struct {
	ID      string          `json:"id"`
	Kind    string          `json:"kind,omitempty"`
	Status  progress.Status `json:"status,omitempty"`
	Current int64           `json:"current,omitempty"`
	Total   int64           `json:"total,omitempty"`
	Err     string          `json:"err,omitempty"`
}

// WireUpdate converts u for the wire.
func WireUpdate(u progress.Update) Update {
	w := Update{ID: u.ID, Kind: u.Kind, Status: u.Status, Current: u.Current, Total: u.Total}
	if u.Err != nil {
		w.Err = u.Err.Error()
	}
	return w
}

// Progress converts u back.
func (u Update) Progress() progress.Update {
	p := progress.Update{ID: u.ID, Kind: u.Kind, Status: u.Status, Current: u.Current, Total: u.Total}
	if u.Err != "" {
		p.Err = errors.New(u.Err)
	}
	return p
}

// Coalescer is a progress.Sink that keeps Updates until Take: a byte
// count that a later one of the same item and status supersedes is
// dropped, so a slow reader gets every change of status and the latest
// count, not every read of a pipeline.
type Coalescer struct {
	mu      sync.Mutex
	pending []Update
	// last indexes pending by item, for the update that may be replaced.
	last   map[string]int
	notify chan struct{}
}

// NewCoalescer returns an empty Coalescer.
func NewCoalescer() *Coalescer {
	return &Coalescer{last: map[string]int{}, notify: make(chan struct{}, 1)}
}

// Update implements progress.Sink.
func (c *Coalescer) Update(u progress.Update) {
	w := WireUpdate(u)
	c.mu.Lock()
	if i, ok := c.last[w.ID]; ok {
		p := &c.pending[i]
		if (w.Status == "" || w.Status == p.Status) && w.Err == "" && (w.Kind == "" || w.Kind == p.Kind) {
			// While bytes move, Current is taken as given (0: it
			// restarted); otherwise 0 keeps what the item had.
			if w.Current != 0 || moving(p.Status) {
				p.Current = w.Current
			}
			if w.Total != 0 {
				p.Total = w.Total
			}
			c.mu.Unlock()
			return
		}
	}
	c.last[w.ID] = len(c.pending)
	c.pending = append(c.pending, w)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// moving reports whether Current is taken as given in status s (see
// progress.Update).
func moving(s progress.Status) bool {
	return s == progress.Downloading || s == progress.Uploading || s == progress.Unpacking
}

// Ready is signalled when there are updates to take.
func (c *Coalescer) Ready() <-chan struct{} { return c.notify }

// Take returns the pending updates, oldest first, and forgets them.
func (c *Coalescer) Take() []Update {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending
	c.pending = nil
	clear(c.last)
	return p
}

// codec encodes frames as JSON, except frames that carry only archive
// data: those are a marker byte and the raw bytes (JSON would base64 them,
// and a streamed export ran at a fifth of the speed of one to a file).
type codec struct{}

// rawData starts a data-only frame; JSON never starts with it.
const rawData = 0x01

func (codec) Marshal(v any) ([]byte, error) {
	var data []byte
	switch f := v.(type) {
	case *ServerFrame:
		if f.Progress == nil && f.Credential == "" && f.Warn == "" && f.Result == nil && len(f.Data) > 0 {
			data = f.Data
		}
	case *ClientFrame:
		if f.Start == nil && f.Credential == nil && !f.EOF && !f.Cancel && len(f.Data) > 0 {
			data = f.Data
		}
	}
	if data != nil {
		return append([]byte{rawData}, data...), nil
	}
	return json.Marshal(v)
}

func (codec) Unmarshal(b []byte, v any) error {
	if len(b) > 0 && b[0] == rawData {
		// gRPC reuses b once this returns: the data is copied.
		data := append([]byte(nil), b[1:]...)
		switch f := v.(type) {
		case *ServerFrame:
			*f = ServerFrame{Data: data}
			return nil
		case *ClientFrame:
			*f = ClientFrame{Data: data}
			return nil
		}
		return fmt.Errorf("jobs codec: a data frame for a %T", v)
	}
	return json.Unmarshal(b, v)
}

func (codec) Name() string { return Codec }

func init() { encoding.RegisterCodec(codec{}) }
