package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	ev := func(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
	tests := []struct {
		name, in string
		code     int
		want     []string
		not      []string
	}{
		{"pass and skip", ev(
			`{"Action":"run","Package":"p","Test":"TestA"}`,
			`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
			`{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: needs root\n"}`,
			`{"Action":"output","Package":"p","Test":"TestA","Output":"--- SKIP: TestA (0.00s)\n"}`,
			`{"Action":"skip","Package":"p","Test":"TestA"}`,
			`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: chatter\n"}`,
			`{"Action":"pass","Package":"p","Test":"TestB"}`,
			`{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}`,
			`{"Action":"pass","Package":"p"}`,
		), 0, []string{"--- SKIP: p TestA: a_test.go:9: needs root\n", "ok  \tp\t0.1s\n"}, []string{"chatter"}},
		{"failure keeps its output", ev(
			`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:5: got 1, want 2\n"}`,
			`{"Action":"output","Package":"p","Test":"TestC","Output":"--- FAIL: TestC (0.00s)\n"}`,
			`{"Action":"fail","Package":"p","Test":"TestC"}`,
			`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}`,
			`{"Action":"fail","Package":"p"}`,
		), 1, []string{"got 1, want 2", "--- FAIL: TestC", "FAIL\tp"}, nil},
		{"timeout dump of a test with no event of its own", ev(
			`{"Action":"run","Package":"p","Test":"TestSlow"}`,
			`{"Action":"output","Package":"p","Test":"TestSlow","Output":"panic: test timed out after 2s\n"}`,
			`{"Action":"output","Package":"p","Test":"TestSlow","Output":"\trunning tests:\n\t\tTestSlow (2s)\n"}`,
			`{"Action":"output","Package":"p","Output":"FAIL\tp\t2.013s\n"}`,
			`{"Action":"fail","Package":"p"}`,
		), 1, []string{"panic: test timed out after 2s", "TestSlow (2s)", "FAIL\tp"}, nil},
		{"build error passes through", "# p\n./a.go:1: syntax error\n", 1, []string{"syntax error"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(strings.NewReader(tt.in), &out)
			if code != tt.code {
				t.Errorf("run = %d, want %d; output:\n%s", code, tt.code, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("output has %q:\n%s", n, out.String())
				}
			}
		})
	}
}
