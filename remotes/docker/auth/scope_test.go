package auth

import (
	"slices"
	"testing"
)

func TestNormalizeScopes(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"nil", nil, nil},
		{"one", []string{"repository:a:pull"}, []string{"repository:a:pull"}},
		{"merged and sorted", []string{"repository:b:push", "repository:a:pull", "repository:b:pull"}, []string{"repository:a:pull", "repository:b:pull,push"}},
		{"duplicates", []string{"repository:a:pull,pull", "repository:a:pull"}, []string{"repository:a:pull"}},
		{"space separated", []string{"repository:a:pull repository:b:pull"}, []string{"repository:a:pull", "repository:b:pull"}},
		{"name with colon", []string{"repository:host:5000/a:push,pull"}, []string{"repository:host:5000/a:pull,push"}},
		{"odd kept", []string{"weird", "repository:a:pull", "weird"}, []string{"repository:a:pull", "weird"}},
		{"catalog", []string{"registry:catalog:*"}, []string{"registry:catalog:*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeScopes(tt.in); !slices.Equal(got, tt.want) {
				t.Fatalf("NormalizeScopes(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		have, need []string
		want       bool
	}{
		{[]string{"repository:a:pull,push"}, []string{"repository:a:pull"}, true},
		{[]string{"repository:a:pull"}, []string{"repository:a:pull,push"}, false},
		{[]string{"repository:a:pull"}, []string{"repository:b:pull"}, false},
		{[]string{"repository:a:pull"}, nil, true},
		{nil, []string{"repository:a:pull"}, false},
	}
	for _, tt := range tests {
		if got := covers(tt.have, tt.need); got != tt.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.have, tt.need, got, tt.want)
		}
	}
}

func TestRepositoryScope(t *testing.T) {
	if got := RepositoryScope("library/alpine", false); got != "repository:library/alpine:pull" {
		t.Errorf("RepositoryScope(pull) = %q", got)
	}
	if got := RepositoryScope("library/alpine", true); got != "repository:library/alpine:pull,push" {
		t.Errorf("RepositoryScope(push) = %q", got)
	}
}
