package jobs

import (
	"errors"
	"reflect"
	"testing"

	"github.com/strata-oci/strata/progress"
)

// TestCoalescer: byte counts of one item in one status collapse to the
// latest; every change of status, and errors, get through in order.
func TestCoalescer(t *testing.T) {
	c := NewCoalescer()
	c.Update(progress.Update{ID: "a", Kind: "layer", Status: progress.Waiting, Total: 100})
	c.Update(progress.Update{ID: "a", Status: progress.Downloading, Current: 10})
	c.Update(progress.Update{ID: "b", Kind: "config", Status: progress.Downloading, Current: 1, Total: 2})
	c.Update(progress.Update{ID: "a", Status: progress.Downloading, Current: 60})
	c.Update(progress.Update{ID: "a", Current: 90})
	select {
	case <-c.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	got := c.Take()
	want := []Update{
		{ID: "a", Kind: "layer", Status: progress.Waiting, Total: 100},
		{ID: "a", Status: progress.Downloading, Current: 90},
		{ID: "b", Kind: "config", Status: progress.Downloading, Current: 1, Total: 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("first take = %+v\nwant %+v", got, want)
	}
	c.Update(progress.Update{ID: "a", Status: progress.Downloading, Current: 95})
	c.Update(progress.Update{ID: "a", Status: progress.Failed, Err: errors.New("boom")})
	got = c.Take()
	want = []Update{
		{ID: "a", Status: progress.Downloading, Current: 95},
		{ID: "a", Status: progress.Failed, Err: "boom"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("second take = %+v\nwant %+v", got, want)
	}
	if p := got[1].Progress(); p.Err == nil || p.Err.Error() != "boom" || p.Status != progress.Failed {
		t.Fatalf("back from the wire: %+v", p)
	}
	if got := c.Take(); len(got) != 0 {
		t.Fatalf("third take = %+v, want nothing", got)
	}
}

func TestRequestKind(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		kind string
	}{
		{Request{}, ""},
		{Request{GC: &GCRequest{}}, "gc"},
		{Request{Pull: &PullRequest{}}, "pull"},
		{Request{Unpack: &UnpackRequest{}}, "unpack"},
		{Request{GC: &GCRequest{}, Fsck: &FsckRequest{}}, ""},
	} {
		if got := tc.req.Kind(); got != tc.kind {
			t.Errorf("Kind of %+v = %q, want %q", tc.req, got, tc.kind)
		}
	}
}

// TestCoalescerRestart: while bytes move, a count of 0 is a restart, not
// "keep".
func TestCoalescerRestart(t *testing.T) {
	c := NewCoalescer()
	c.Update(progress.Update{ID: "a", Status: progress.Downloading, Current: 50})
	c.Update(progress.Update{ID: "a", Status: progress.Downloading, Current: 0})
	if got := c.Take(); len(got) != 1 || got[0].Current != 0 {
		t.Fatalf("take = %+v, want one update at 0", got)
	}
}

// TestCodec: data-only frames travel raw, everything else as JSON, and
// both come back as they went.
func TestCodec(t *testing.T) {
	var c codec
	for _, v := range []any{
		&ServerFrame{Data: []byte("tar bytes\x00\x01")},
		&ClientFrame{Data: []byte{rawData, '{'}},
		&ServerFrame{Warn: "w", Data: []byte("x")},
		&ClientFrame{EOF: true},
		&ClientFrame{Start: &Request{GC: &GCRequest{DryRun: true}}},
		&ServerFrame{Progress: []Update{{ID: "a", Current: 1}}},
	} {
		b, err := c.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		raw := b[0] == rawData
		if wantRaw := (reflect.DeepEqual(v, &ServerFrame{Data: []byte("tar bytes\x00\x01")}) || reflect.DeepEqual(v, &ClientFrame{Data: []byte{rawData, '{'}})); raw != wantRaw {
			t.Errorf("%+v: raw %v, want %v", v, raw, wantRaw)
		}
		got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := c.Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		clear(b) // gRPC reuses its buffer
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %+v = %+v", v, got)
		}
	}
}
