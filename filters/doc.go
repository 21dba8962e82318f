// Package filters parses and evaluates containerd's filter syntax, the
// strings that `ctr` and the containerd gRPC API pass to List calls, such as
//
//	name==docker.io/library/alpine:3.20,labels."com.example.team"==infra
//	labels.env~=/^(dev|test)$/
//	labels."containerd.io/gc.root"
//
// A filter string is a comma-separated list of selectors, all of which must
// hold (AND). A selector names a field of the object by a dotted field path
// and optionally compares it with a value:
//
//	fieldpath            the field is present
//	fieldpath==value     the field is present and equals value
//	fieldpath!=value     the field, read as "" when absent, differs from value
//	fieldpath~=value     the field, read as "" when absent, matches the
//	                     regular expression value (Go RE2 syntax, unanchored)
//
// There is no OR inside one string: `|` is a quote character (below), not an
// operator. OR comes from several strings: [ParseAll] matches an object if
// any of its strings does, as the repeated `filters` field of containerd's
// List requests does. The empty string and an empty list match everything.
//
// The object is reached through an [Adaptor], which maps a field path to a
// value. What a path means is the adaptor's business; by convention
// ["labels", k1, k2...] looks up the label "k1.k2..." ([LabelField]), so
// labels.com.example.foo and labels."com.example.foo" select the same label.
//
// # Grammar
//
// The grammar, in EBNF over Unicode code points; offsets in errors are byte
// offsets into the string:
//
//	filter    = "" | selector { "," selector } .
//	selector  = fieldpath [ operator value ] .
//	fieldpath = field { "." field } .
//	field     = [ ws ] ( name | dquoted ) .
//	name      = namechar { namechar } .               (* [A-Za-z0-9_-]+ *)
//	operator  = [ ws ] ( "==" | "!=" | "~=" ) .
//	value     = [ ws ] ( dquoted | plain ) .          (* after == and != *)
//	          | [ ws ] ( dquoted | plain | slashquoted | pipequoted ) . (* after ~= *)
//	plain     = first { valuechar } .
//
// where ws is any run of Unicode white space; valuechar is any graphic
// character other than white space and ","; first is any character other
// than white space, ",", ".", "=", "!", "~", `"`, "/" and "|". Quoted
// strings are delimited by `"`, "/" or "|" and hold any characters but a
// newline and their own delimiter, with the escapes of Go string literals:
// \a \b \f \n \r \t \v \\, \ooo (three octal digits, at most \377), \xhh
// (one byte), \uhhhh, \Uhhhhhhhh (a code point, at most \U0010FFFF), and a
// backslash before the string's own delimiter (\" \/ \|); any other escape
// is an error, so a /regexp/ spells \d as \\d.
//
// White space is allowed exactly where containerd allows it: at the start,
// after "," and ".", and on both sides of an operator; it is an error before
// "," or ".", at the end, and after a field path with no operator. A NUL, an
// invalid UTF-8 sequence or U+FFFD anywhere in the string is an error (they
// can still be spelled with escapes inside quotes).
//
// # Differences from containerd
//
// The accepted strings and the meaning of each match containerd's
// pkg/filters, with one exception: an invalid regular expression after ~= is
// a parse error here, where containerd accepts the string and lets that
// selector match nothing (logging the error at every match). Errors are
// [*SyntaxError] values that give the offset and wrap
// errdefs.ErrInvalidArgument; containerd's Parse errors wrap nothing and
// only ParseAll's wrap ErrInvalidArgument.
package filters
