// Command testlog reads `go test -json` on stdin and prints what `go test`
// prints without -v (the "ok"/"FAIL" line of every package, the output of
// failed tests), plus one line per skipped test with the reason it gave, so
// that no test skips silently in CI's log. It exits 1 when a test or a
// package failed, or when the input ends without a package result.
//
//	go test -json ./... | go run ./internal/tools/testlog
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of test2json (cmd/test2json's TestEvent).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	type key struct{ pkg, test string }
	outputs := map[key][]string{}
	failed, results := false, 0
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// Not test2json (a build error, say): pass it through.
			fmt.Fprintln(out, string(line))
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "build-fail":
			failed = true
		case "output":
			outputs[k] = append(outputs[k], e.Output)
		case "skip":
			if e.Test != "" {
				fmt.Fprintf(out, "--- SKIP: %s %s: %s\n", e.Package, e.Test, reason(outputs[k]))
			}
			delete(outputs, k)
		case "fail":
			failed = true
			if e.Test == "" {
				results++
				// Tests still running when the package failed (a timeout's
				// panic and goroutine dump are filed under the test it
				// caught) get no event of their own: print them first.
				for tk, lines := range outputs {
					if tk.pkg == e.Package && tk.test != "" {
						for _, o := range lines {
							fmt.Fprint(out, o)
						}
						delete(outputs, tk)
					}
				}
				// The package's own lines: "FAIL pkg", build errors, panics.
				for _, o := range outputs[k] {
					fmt.Fprint(out, o)
				}
			} else {
				for _, o := range outputs[k] {
					fmt.Fprint(out, o)
				}
			}
			delete(outputs, k)
		case "pass":
			if e.Test == "" {
				results++
				for _, o := range outputs[k] {
					if strings.HasPrefix(o, "ok") || strings.HasPrefix(o, "?") {
						fmt.Fprint(out, o)
					}
				}
			}
			delete(outputs, k)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testlog:", err)
		return 1
	}
	if failed || results == 0 {
		return 1
	}
	return 0
}

// reason is what a skipped test logged, without test2json's framing lines.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " / ")
}
