package auth

import (
	"sort"
	"strings"
)

// RepositoryScope returns the token scope to pull from repository repo
// ("repository:library/alpine:pull"), or to pull and push.
func RepositoryScope(repo string, push bool) string {
	if push {
		return "repository:" + repo + ":pull,push"
	}
	return "repository:" + repo + ":pull"
}

func cacheKey(host string, scopes []string) string {
	return host + " " + strings.Join(scopes, " ")
}

func scopeList(scopes []string) string {
	if len(scopes) == 0 {
		return "no scope"
	}
	return "scope " + strings.Join(scopes, " ")
}

// NormalizeScopes returns scopes sorted, with the actions on each resource
// merged, sorted and deduplicated: "repository:a:push" and
// "repository:a:pull" become "repository:a:pull,push". A scope that is not
// type:name:actions is kept as it is.
func NormalizeScopes(scopes []string) []string {
	actions := map[string]map[string]bool{}
	var odd []string
	for _, s := range scopes {
		for _, s := range strings.Fields(s) {
			i := strings.LastIndexByte(s, ':')
			if i <= 0 || !strings.Contains(s[:i], ":") {
				odd = append(odd, s)
				continue
			}
			res := s[:i]
			if actions[res] == nil {
				actions[res] = map[string]bool{}
			}
			for _, act := range strings.Split(s[i+1:], ",") {
				if act != "" {
					actions[res][act] = true
				}
			}
		}
	}
	out := odd
	for res, set := range actions {
		acts := make([]string, 0, len(set))
		for act := range set {
			acts = append(acts, act)
		}
		sort.Strings(acts)
		out = append(out, res+":"+strings.Join(acts, ","))
	}
	sort.Strings(out)
	return dedupe(out)
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// covers reports whether normalized scopes have grant at least what need
// asks for.
func covers(have, need []string) bool {
	got := map[string]bool{}
	for _, s := range have {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			got[s] = true
			continue
		}
		for _, act := range strings.Split(s[i+1:], ",") {
			got[s[:i]+":"+act] = true
		}
		got[s] = true
	}
	for _, s := range need {
		i := strings.LastIndexByte(s, ':')
		if i < 0 || !strings.Contains(s[:i], ":") {
			if !got[s] {
				return false
			}
			continue
		}
		for _, act := range strings.Split(s[i+1:], ",") {
			if !got[s[:i]+":"+act] {
				return false
			}
		}
	}
	return true
}
