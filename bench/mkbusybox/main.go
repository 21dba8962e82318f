// Command mkbusybox writes the test busybox image (testutil.BusyboxLayout:
// Debian's static busybox, one layer, named testutil.BusyboxImageName) as
// an OCI image layout tar to the path given, for the benchmark scripts
// that load the same image into strata and its peers.
//
//	go run ./bench/mkbusybox OUT.tar
package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/strata-oci/strata/testutil"
)

// tb is the part of testing.TB that BusyboxLayout uses, outside a test:
// failures end the program, cleanups run at exit.
type tb struct {
	testing.TB // not set: a call to any other method panics
	cleanups   []func()
}

func (t *tb) Helper()                      {}
func (t *tb) Cleanup(f func())             { t.cleanups = append(t.cleanups, f) }
func (t *tb) Fatal(args ...any)            { t.fail(fmt.Sprint(args...)) }
func (t *tb) Fatalf(f string, args ...any) { t.fail(fmt.Sprintf(f, args...)) }

func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "mkbusybox")
	if err != nil {
		t.fail(err.Error())
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (t *tb) fail(msg string) {
	t.done()
	fmt.Fprintln(os.Stderr, "mkbusybox:", msg)
	os.Exit(1)
}

func (t *tb) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkbusybox OUT.tar")
		os.Exit(2)
	}
	t := &tb{}
	b, err := os.ReadFile(testutil.BusyboxLayout(t))
	if err == nil {
		err = os.WriteFile(os.Args[1], b, 0o644)
	}
	if err != nil {
		t.fail(fmt.Sprintf("write %s: %v", os.Args[1], err))
	}
	t.done()
}
