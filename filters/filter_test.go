package filters

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
)

// object is what the tests filter; fields that are "" are absent, like the
// string fields of containerd's records.
type object struct {
	id     string
	name   string
	other  string
	labels map[string]string
}

func (o object) Field(fieldpath []string) (string, bool) {
	switch fieldpath[0] {
	case "name":
		return o.name, o.name != ""
	case "other":
		return o.other, o.other != ""
	case "labels":
		return LabelField(o.labels, fieldpath)
	}
	return "", false
}

var corpus = []object{
	{id: "a", name: "alpine", labels: map[string]string{"env": "prod", "com.example.team": "infra"}},
	{id: "b", name: "busybox", labels: map[string]string{"env": "dev"}},
	{id: "c", labels: map[string]string{"env": "", "com.example.team": "web"}},
	{id: "d", name: "ubuntu", other: "too complex, yo"},
	{id: "e", name: "débian", labels: map[string]string{`weird key \ "`: "x", "a|b": "pipe"}},
	{id: "f", name: "ns/img:1", other: `say "hi"`, labels: map[string]string{"q": `a"b`}},
}

var allIDs = []string{"a", "b", "c", "d", "e", "f"}

// matching returns the ids of the corpus objects that f matches.
func matching(f Filter) []string {
	ids := []string{}
	for _, o := range corpus {
		if f.Match(o) {
			ids = append(ids, o.id)
		}
	}
	return ids
}

func TestParseMatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  []string
	}{
		{name: "Empty", input: "", want: allIDs},

		{name: "Present", input: "name", want: []string{"a", "b", "d", "e", "f"}},
		{name: "PresentLabel", input: "labels.env", want: []string{"a", "b", "c"}},
		{name: "PresentLabelEmptyValue", input: "labels.env,name", want: []string{"a", "b"}},
		{name: "PresentLabelsAlone", input: "labels", want: []string{}},
		{name: "PresentUnknownField", input: "size", want: []string{}},

		{name: "Equal", input: "name==alpine", want: []string{"a"}},
		{name: "EqualEmptyNeedsPresence", input: `name==""`, want: []string{}},
		{name: "EqualEmptyLabel", input: `labels.env==""`, want: []string{"c"}},
		{name: "EqualPunctuated", input: "name==ns/img:1", want: []string{"f"}},
		{name: "EqualUnicode", input: "name==débian", want: []string{"e"}},
		{name: "EqualPlainWithQuoteInside", input: `labels.q==a"b`, want: []string{"f"}},
		{name: "EqualQuotedComma", input: `other=="too complex, yo"`, want: []string{"d"}},
		{name: "EqualQuotedEscapes", input: `other=="say \"hi\""`, want: []string{"f"}},
		{name: "EqualUnicodeEscape", input: `name=="d\u00e9bian"`, want: []string{"e"}},
		{name: "EqualHexAndOctalEscapes", input: `name=="\x61lpin\145"`, want: []string{"a"}},
		{name: "EqualWrongCase", input: "name==Alpine", want: []string{}},

		{name: "NotEqual", input: "name!=alpine", want: []string{"b", "c", "d", "e", "f"}},
		{name: "NotEqualMissingFieldIsEmpty", input: `name!=""`, want: []string{"a", "b", "d", "e", "f"}},
		{name: "NotEqualMissingLabel", input: "labels.env!=prod", want: []string{"b", "c", "d", "e", "f"}},

		{name: "Matches", input: "name~=^b", want: []string{"b"}},
		{name: "MatchesUnanchored", input: "name~=u", want: []string{"b", "d"}},
		{name: "MatchesMissingFieldIsEmpty", input: "name~=^$", want: []string{"c"}},
		{name: "MatchesAnything", input: "name~=/.*/", want: allIDs},
		{name: "MatchesPlainBackslash", input: `name~=^\w+/\w+`, want: []string{"f"}},
		{name: "MatchesSlashQuoted", input: `labels.env~=/^(dev|prod)$/`, want: []string{"a", "b"}},
		{name: "MatchesSlashQuotedEscapedSlash", input: `name~=/^ns\/img/`, want: []string{"f"}},
		{name: "MatchesSlashQuotedBackslash", input: `name~=/^\\w+\/img:\\d$/`, want: []string{"f"}},
		{name: "MatchesPipeQuoted", input: `name~=|^ns/|`, want: []string{"f"}},
		{name: "MatchesPipeQuotedHoldsSlash", input: `name~=|[/]img|`, want: []string{"f"}},
		{name: "MatchesDoubleQuoted", input: `other~="complex, yo$"`, want: []string{"d"}},
		{name: "MatchesPlainPipe", input: "name~=^(alpine|busybox)$", want: []string{"a", "b"}},
		{name: "MatchesRepetitionInQuotes", input: "name~=/^[abl]{1,2}p/", want: []string{"a"}},
		{name: "MatchesGarbageRegexp", input: `other~=/[abc]{0,1}"\//,name!=foo`, want: []string{}},

		{name: "QuotedField", input: `labels."com.example.team"==infra`, want: []string{"a"}},
		{name: "DottedFieldJoinsLikeQuoted", input: "labels.com.example.team==infra", want: []string{"a"}},
		{name: "QuotedFieldEscapes", input: `labels."weird key \\ \""==x`, want: []string{"e"}},
		{name: "QuotedFieldPipeInside", input: `labels."a|b"==pipe`, want: []string{"e"}},
		{name: "QuotedFirstField", input: `"name"==alpine`, want: []string{"a"}},

		{name: "And", input: "name==alpine,labels.env==prod", want: []string{"a"}},
		{name: "AndNoMatch", input: "name==alpine,labels.env==dev", want: []string{}},
		{name: "AndThree", input: "labels.env,name!=alpine,name~=x", want: []string{"b"}},
		{name: "AndSameFieldTwice", input: "name!=alpine,name!=busybox,name", want: []string{"d", "e", "f"}},

		{name: "SpaceLeading", input: "  name==alpine", want: []string{"a"}},
		{name: "SpaceAroundOperator", input: "name ==\talpine", want: []string{"a"}},
		{name: "SpaceAfterComma", input: "name==alpine, labels.env", want: []string{"a"}},
		{name: "SpaceAfterDot", input: "labels. env==prod", want: []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.input)
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want no error", tc.input, err)
			}
			if got := matching(f); !slices.Equal(got, tc.want) {
				t.Errorf("Parse(%q) matches %v, want %v", tc.input, got, tc.want)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		input  string
		offset int
		msg    string // a part of SyntaxError.Msg
	}{
		{name: "MissingValue", input: "name==", offset: 6, msg: "expected value"},
		{name: "MissingValueBeforeComma", input: "image~=,id!=x", offset: 7, msg: `expected value, found ","`},
		{name: "MissingValueSpace", input: "name== ", offset: 7, msg: "expected value"},
		{name: "ValueStartsWithOperator", input: "name== !foo", offset: 7, msg: `expected value, found "!"`},
		{name: "OperatorRunsOn", input: "name==!foo", offset: 4, msg: `unknown operator "==!"`},
		{name: "RegexpStartsWithDot", input: "name~=.*", offset: 6, msg: `expected value, found "."`},
		{name: "ValueStartsWithDot", input: "name==.foo", offset: 6, msg: `expected value, found "."`},
		{name: "OnlySpace", input: " ", offset: 1, msg: "expected field"},

		{name: "TrailingComma", input: "name==foo,", offset: 10, msg: "expected field"},
		{name: "LeadingComma", input: ",name", offset: 0, msg: `expected field, found ","`},
		{name: "DoubleComma", input: "a,,b", offset: 2, msg: `expected field, found ","`},
		{name: "TrailingDot", input: "labels.", offset: 7, msg: "expected field"},
		{name: "DoubleDot", input: "labels..foo", offset: 7, msg: `expected field, found "."`},
		{name: "Garbage", input: "?", offset: 0, msg: `expected field, found "?"`},
		{name: "GarbageInFieldpath", input: `labels.?"x"==y`, offset: 7, msg: `expected field, found "?"`},
		{name: "GarbageAfterQuotedValue", input: `name=="foo"bar`, offset: 11, msg: `expected "," or end of filter, found "b"`},
		{name: "GarbageAfterQuotedField", input: `labels."foo"bar==x`, offset: 12, msg: `expected operator (==, !=, ~=), found "bar"`},
		{name: "ControlCharInValue", input: "name==a\x01b", offset: 7, msg: `found "\x01"`},

		{name: "SingleEquals", input: "name=foo", offset: 4, msg: `unknown operator "="`},
		{name: "TripleEquals", input: "name===foo", offset: 4, msg: `unknown operator "==="`},
		{name: "BangAlone", input: "name!foo", offset: 4, msg: `unknown operator "!"`},
		{name: "TildeAlone", input: "name~foo", offset: 4, msg: `unknown operator "~"`},
		{name: "NoOperator", input: "name foo", offset: 5, msg: `expected operator (==, !=, ~=), found "foo"`},

		{name: "TrailingSpaceAfterValue", input: "name==foo ", offset: 9, msg: `expected "," or end of filter, found " "`},
		{name: "TrailingSpaceAfterField", input: "name ", offset: 5, msg: "expected operator"},
		{name: "SpaceBeforeComma", input: "a==b ,c", offset: 4, msg: `found " "`},
		{name: "SpaceBeforeCommaAfterField", input: "a ,c", offset: 2, msg: `expected operator (==, !=, ~=), found ","`},
		{name: "SpaceBeforeDot", input: "labels .foo", offset: 7, msg: `expected operator (==, !=, ~=), found "."`},

		{name: "UnterminatedValue", input: `name=="foo`, offset: 6, msg: `unterminated "-quoted string`},
		{name: "UnterminatedField", input: `labels."foo==x`, offset: 7, msg: `unterminated "-quoted string`},
		{name: "UnterminatedSlashInField", input: "labels.ns/key==value", offset: 9, msg: "unterminated /-quoted string"},
		{name: "UnterminatedSlashValue", input: "labels.key==/value", offset: 12, msg: "unterminated /-quoted string"},
		{name: "UnterminatedPipeValue", input: "name==|foo", offset: 6, msg: "unterminated |-quoted string"},
		{name: "NewlineInQuotes", input: "labels.\"a\nb\"==x", offset: 7, msg: "unterminated"},
		{name: "BackslashAtEnd", input: `name=="foo\`, offset: 10, msg: "unterminated"},

		{name: "SlashQuotedField", input: "labels./foo/==x", offset: 7, msg: "/-quoted field"},
		{name: "PipeQuotedField", input: "labels.|foo|==omg", offset: 7, msg: "|-quoted field"},
		{name: "SlashQuotedAfterEqual", input: "name==/foo/", offset: 6, msg: "/-quoted value after =="},
		{name: "PipeQuotedAfterNotEqual", input: "name!=|foo|", offset: 6, msg: "|-quoted value after !="},

		{name: "EscapeUnknown", input: `name=="\g"`, offset: 7, msg: `backslash before "g"`},
		{name: "EscapeRegexpClassInSlashes", input: `name~=/\d+/`, offset: 7, msg: `backslash before "d"`},
		{name: "EscapeOtherQuote", input: `name~=/\"/`, offset: 7, msg: `backslash before "\""`},
		{name: "EscapeSingleQuote", input: `name=="\'"`, offset: 7, msg: `backslash before "'"`},
		{name: "EscapeShortHex", input: `labels."\xaz"`, offset: 8, msg: "invalid hex escape"},
		{name: "EscapeOctalTooBig", input: `name=="\400"`, offset: 7, msg: "invalid octal escape"},
		{name: "EscapeOctalShort", input: `name=="\12"`, offset: 7, msg: "invalid octal escape"},
		{name: "EscapeShortUnicode", input: `name=="\u12"`, offset: 7, msg: "invalid Unicode escape"},
		{name: "EscapeBeyondUnicode", input: `name=="\U00110000"`, offset: 7, msg: "invalid Unicode escape"},

		{name: "BadRegexp", input: "name~=(", offset: 6, msg: "invalid regexp"},
		{name: "BadRegexpQuoted", input: "name==x,name~=/[a/", offset: 14, msg: "invalid regexp"},

		{name: "NUL", input: "name\x00bar", offset: 4, msg: "NUL character"},
		{name: "NULInQuotes", input: "name==\"a\x00\"", offset: 8, msg: "NUL character"},
		{name: "InvalidUTF8", input: "name==\xff", offset: 6, msg: "invalid UTF-8"},
		{name: "InvalidUTF8InValue", input: "name==a\xff", offset: 7, msg: "invalid UTF-8"},
		{name: "ReplacementChar", input: "name==\ufffd", offset: 6, msg: "U+FFFD character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.input)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tc.input, f)
			}
			if f != nil {
				t.Errorf("Parse(%q) = %v, %v, want nil filter with the error", tc.input, f, err)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Parse(%q) = %v, want errdefs.ErrInvalidArgument", tc.input, err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %#v, want *SyntaxError", tc.input, err)
			}
			if se.Input != tc.input || se.Offset != tc.offset || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("Parse(%q) = %q at %d, want %q at %d", tc.input, se.Msg, se.Offset, tc.msg, tc.offset)
			}
			if _, err := ParseAll("name", tc.input); err == nil || err.Error() != se.Error() {
				t.Errorf("ParseAll(%q, %q) = %v, want %v", "name", tc.input, err, se)
			}
		})
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  string
	}{
		{name: "AtEnd", input: "name==", want: `filters: parse "name==": expected value at 6`},
		{name: "Found", input: "name==foo,,", want: `filters: parse "name==foo,,": expected field, found "," at 10`},
		{name: "QuotedInput", input: "a\x00", want: `filters: parse "a\x00": NUL character at 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.input)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%q) = %v, want %v", tc.input, err, tc.want)
			}
		})
	}
}

func TestBadRegexpCause(t *testing.T) {
	_, err := Parse("name~=a(b")
	var se *syntax.Error
	if !errors.As(err, &se) || se.Code != syntax.ErrMissingParen {
		t.Errorf("Parse(%q) = %v, want a *syntax.Error with %v", "name~=a(b", err, syntax.ErrMissingParen)
	}
}

func TestParseAll(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inputs []string
		want   []string
	}{
		{name: "None", inputs: nil, want: allIDs},
		{name: "Empty", inputs: []string{""}, want: allIDs},
		{name: "EmptyOrName", inputs: []string{"name==alpine", ""}, want: allIDs},
		{name: "One", inputs: []string{"name==alpine"}, want: []string{"a"}},
		{name: "Or", inputs: []string{"name==alpine", "name==busybox"}, want: []string{"a", "b"}},
		{name: "OrOfAnds", inputs: []string{"name==alpine,labels.env==dev", "labels.env==dev"}, want: []string{"b"}},
		{name: "Overlap", inputs: []string{"labels.env", "name~=^[ab]"}, want: []string{"a", "b", "c"}},
		{name: "NoneMatch", inputs: []string{"name==x", "name==y"}, want: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseAll(tc.inputs...)
			if err != nil {
				t.Fatalf("ParseAll(%q) = %v, want no error", tc.inputs, err)
			}
			if got := matching(f); !slices.Equal(got, tc.want) {
				t.Errorf("ParseAll(%q) matches %v, want %v", tc.inputs, got, tc.want)
			}
		})
	}
}

func TestParseAllError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inputs []string
		bad    string
	}{
		{name: "First", inputs: []string{"name==", "name==alpine"}, bad: "name=="},
		{name: "Second", inputs: []string{"name==alpine", "name~=("}, bad: "name~=("},
		{name: "AfterEmpty", inputs: []string{"", "name=x"}, bad: "name=x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseAll(tc.inputs...)
			var se *SyntaxError
			if !errors.As(err, &se) || se.Input != tc.bad || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ParseAll(%q) = %v, %v, want a *SyntaxError for %q", tc.inputs, f, err, tc.bad)
			}
		})
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  string
	}{
		{name: "Empty", input: "", want: ""},
		{name: "Present", input: "labels.env", want: "labels.env"},
		{name: "Plain", input: "name==foo,other!=bar,x~=^a.*", want: "name==foo,other!=bar,x~=^a.*"},
		{name: "Spaces", input: " name ==  foo, labels. env", want: "name==foo,labels.env"},
		{name: "QuotedFieldKept", input: `labels."com.example.foo"==bar`, want: `labels."com.example.foo"==bar`},
		{name: "QuotedFieldUnneeded", input: `labels."simple"`, want: "labels.simple"},
		{name: "EmptyField", input: `labels.""`, want: `labels.""`},
		{name: "EmptyValue", input: `name==""`, want: `name==""`},
		{name: "SlashRegexp", input: `name~=/[abc]+/`, want: `name~=[abc]+`},
		{name: "PipeRegexpWithComma", input: `name~=|a{1,2}|`, want: `name~="a{1,2}"`},
		{name: "SlashRegexpBackslash", input: `name~=/\\d/`, want: `name~=\d`},
		{name: "ValueStartingWithSlash", input: `name=="/x"`, want: `name=="/x"`},
		{name: "ValueStartingWithDot", input: `name==".x"`, want: `name==".x"`},
		{name: "ValueWithSpace", input: `other=="a b"`, want: `other=="a b"`},
		{name: "EscapesDecoded", input: `name=="\x41\u00e9"`, want: "name==Aé"},
		{name: "ControlEscaped", input: `name=="a\tb\\"`, want: `name=="a\x09b\\"`},
		{name: "InvalidUTF8Escaped", input: `name=="\xff"`, want: `name=="\xff"`},
		{name: "ReplacementEscaped", input: `name=="\ufffd\U0001F600"`, want: `name=="\ufffd😀"`},
		{name: "SurrogateBecomesReplacement", input: `name=="\ud800"`, want: `name=="\ufffd"`},
		{name: "NonGraphicEscaped", input: `name=="\u200b"`, want: `name=="\u200b"`},
		{name: "QuoteInField", input: `labels."a\"b"`, want: `labels."a\"b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.input)
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want no error", tc.input, err)
			}
			if got := fmt.Sprint(f); got != tc.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tc.input, got, tc.want)
			}
			g, err := Parse(tc.want)
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want no error", tc.want, err)
			}
			if got := fmt.Sprint(g); got != tc.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tc.want, got, tc.want)
			}
		})
	}
}

func TestLabelField(t *testing.T) {
	labels := map[string]string{"env": "prod", "com.example.team": "infra", "": "empty key"}
	for _, tc := range []struct {
		name        string
		labels      map[string]string
		fieldpath   []string
		want        string
		wantPresent bool
	}{
		{name: "Label", labels: labels, fieldpath: []string{"labels", "env"}, want: "prod", wantPresent: true},
		{name: "DottedKey", labels: labels, fieldpath: []string{"labels", "com", "example", "team"}, want: "infra", wantPresent: true},
		{name: "QuotedKey", labels: labels, fieldpath: []string{"labels", "com.example.team"}, want: "infra", wantPresent: true},
		{name: "EmptyKey", labels: labels, fieldpath: []string{"labels", ""}, want: "empty key", wantPresent: true},
		{name: "Missing", labels: labels, fieldpath: []string{"labels", "team"}},
		{name: "LabelsAlone", labels: labels, fieldpath: []string{"labels"}},
		{name: "OtherField", labels: labels, fieldpath: []string{"name", "env"}},
		{name: "NilMap", labels: nil, fieldpath: []string{"labels", "env"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, present := LabelField(tc.labels, tc.fieldpath)
			if got != tc.want || present != tc.wantPresent {
				t.Errorf("LabelField(%v, %q) = %q, %v, want %q, %v", tc.labels, tc.fieldpath, got, present, tc.want, tc.wantPresent)
			}
		})
	}
}

func TestAdapterFunc(t *testing.T) {
	var got []string
	a := AdapterFunc(func(fieldpath []string) (string, bool) {
		got = fieldpath
		return "v", true
	})
	f, err := Parse(`a."b.c".d==v`)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(a) {
		t.Errorf("Parse(%q).Match = false, want true", `a."b.c".d==v`)
	}
	if want := []string{"a", "b.c", "d"}; !slices.Equal(got, want) {
		t.Errorf("Field got fieldpath %q, want %q", got, want)
	}
}

func TestMatchConcurrent(t *testing.T) {
	f, err := ParseAll("name~=^(alpine|busybox)$,labels.env", "labels.com.example.team!=web,other")
	if err != nil {
		t.Fatal(err)
	}
	want := matching(f)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if got := matching(f); !slices.Equal(got, want) {
					t.Errorf("matching concurrently = %v, want %v", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
