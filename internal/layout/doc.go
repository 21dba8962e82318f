// Package layout holds no code: its tests keep the repository's layout true.
//
// Floors: an internal/ directory is one room on one floor. A package in it
// may import packages of its own room, and packages of the module that do
// not depend, directly or through others, on that room; an import of one
// that does runs back up a floor (it closes a cycle between rooms). So the
// module's internal/ holds only the ground floor (boltutil, tools), the
// test support that starts real parts lives in testutil/, and wiring, the
// top floor that builds the object graph, lives in wiring/, imported only
// by the commands (cmd/*) and by tests and test support (testutil/...,
// packages named *test, _test.go files). TestFloors and TestWiringImporters
// fail naming the offending import.
//
// The table: docs/architecture.md lists every package of the module, one
// row each, first column the package's path in backquotes.
// TestArchitectureTable fails naming a package missing from the table (with
// the line to add) and a row that names no package.
package layout
