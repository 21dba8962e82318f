package collect_test

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/metadata/collect"
)

func TestParseMinFree(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want collect.MinFree
		err  bool
	}{
		{in: "", want: collect.MinFree{}},
		{in: "0", want: collect.MinFree{}},
		{in: "10%", want: collect.MinFree{Percent: 10}},
		{in: "2.5 %", want: collect.MinFree{Percent: 2.5}},
		{in: "1048576", want: collect.MinFree{Bytes: 1 << 20}},
		{in: "500MB", want: collect.MinFree{Bytes: 500e6}},
		{in: "2GiB", want: collect.MinFree{Bytes: 2 << 30}},
		{in: "3 KiB", want: collect.MinFree{Bytes: 3 << 10}},
		{in: "100%", err: true},
		{in: "-1", err: true},
		{in: "ten", err: true},
		{in: "5XB", err: true},
		{in: "9999999999TiB", err: true},
	} {
		got, err := collect.ParseMinFree(tc.in)
		if tc.err {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ParseMinFree(%q) = %+v, %v; want an invalid argument", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMinFree(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
