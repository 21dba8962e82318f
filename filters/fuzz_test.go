package filters

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzParse checks that whatever Parse accepts writes back: String gives a
// spelling that parses to the same selectors and matches the same objects;
// and that whatever it rejects gets a *SyntaxError pointing into the input.
// More seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"name",
		"name==foo",
		"name!=foo,labels.env",
		`labels."com.example.foo"==bar`,
		`labels.com.example.foo~=/^b[a-z]+$/`,
		`name~=|a/b|,other=="x, y"`,
		`name=="\x00\xff\u00e9\U0001F600\ufffd"`,
		" name == foo, labels. x",
		"name==",
		"name==foo,",
		`labels."unterminated`,
		"name~=(",
		"name===x",
	} {
		f.Add(s, "foo")
	}
	f.Fuzz(func(t *testing.T, input, value string) {
		flt, err := Parse(input)
		if err != nil {
			checkSyntaxError(t, input, flt, err)
			return
		}
		if flt == nil {
			t.Fatalf("Parse(%q) = nil, nil, want a filter or an error", input)
		}

		canon := fmt.Sprint(flt)
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) = %v, want no error; %q is the String of Parse(%q)", canon, err, canon, input)
		}
		if got := fmt.Sprint(again); got != canon {
			t.Fatalf("Parse(%q).String() = %q, want %q", canon, got, canon)
		}
		if a, b := describe(flt), describe(again); a != b {
			t.Fatalf("Parse(%q) = %s, want %s as from Parse(%q)", canon, b, a, input)
		}

		all, err := ParseAll(input, input)
		if err != nil {
			t.Fatalf("ParseAll(%q, %q) = %v, want no error", input, input, err)
		}
		for _, a := range fuzzAdaptors(flt, value) {
			want := flt.Match(a.Adaptor)
			if got := flt.Match(a.Adaptor); got != want {
				t.Fatalf("Parse(%q).Match(%s) = %v, then %v", input, a.name, want, got)
			}
			if got := again.Match(a.Adaptor); got != want {
				t.Fatalf("Parse(%q).Match(%s) = %v, want %v as Parse(%q)", canon, a.name, got, want, input)
			}
			if got := all.Match(a.Adaptor); got != want {
				t.Fatalf("ParseAll(%q, %q).Match(%s) = %v, want %v", input, input, a.name, got, want)
			}
		}
	})
}

func checkSyntaxError(t *testing.T, input string, flt Filter, err error) {
	t.Helper()
	if flt != nil {
		t.Fatalf("Parse(%q) = %v, %v, want nil filter with the error", input, flt, err)
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Parse(%q) = %v, want errdefs.ErrInvalidArgument", input, err)
	}
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("Parse(%q) = %#v, want *SyntaxError", input, err)
	}
	if se.Input != input || se.Offset < 0 || se.Offset > len(input) || se.Msg == "" {
		t.Fatalf("Parse(%q) = %#v, want Input %q and Offset in [0, %d]", input, se, input, len(input))
	}
	if !strings.HasPrefix(err.Error(), "filters: parse ") {
		t.Fatalf("Parse(%q) = %v, want the \"filters: parse \" prefix", input, err)
	}
}

// describe spells out what Parse built, independently of String.
func describe(f Filter) string {
	ss, ok := f.(selectors)
	if !ok {
		return fmt.Sprintf("%T", f)
	}
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "{%q %d %q}", s.fieldpath, s.op, s.value)
	}
	return b.String()
}

type namedAdaptor struct {
	name string
	Adaptor
}

// fuzzAdaptors returns objects to match: ones with no fields, with every
// field, and one holding exactly the values the filter's selectors name, so
// that == and ~= selectors meet both their own value and others.
func fuzzAdaptors(f Filter, value string) []namedAdaptor {
	own := map[string]string{}
	if ss, ok := f.(selectors); ok {
		for _, s := range ss {
			own[strings.Join(s.fieldpath, "\x00")] = s.value
		}
	}
	return []namedAdaptor{
		{"nothing", AdapterFunc(func([]string) (string, bool) { return "", false })},
		{"everything=value", AdapterFunc(func([]string) (string, bool) { return value, true })},
		{"everything=\"\"", AdapterFunc(func([]string) (string, bool) { return "", true })},
		{"even paths=value", AdapterFunc(func(fp []string) (string, bool) {
			if len(fp)%2 == 0 {
				return value, true
			}
			return "", false
		})},
		{"own values", AdapterFunc(func(fp []string) (string, bool) {
			v, ok := own[strings.Join(fp, "\x00")]
			return v, ok
		})},
		{"labels", object{name: value, other: value, labels: map[string]string{value: value, "env": "prod"}}},
		{"absent with a value", AdapterFunc(func(fp []string) (string, bool) {
			// Adaptors should not do this; Match reads "" all the same.
			return strings.Join(fp, "."), slices.Contains(fp, value)
		})},
	}
}
