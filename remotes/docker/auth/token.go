package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/containerd/errdefs"
)

// fetchToken gets a token for scopes from realm, with what credentials
// there are for host: an identity token or a kept refresh token by OAuth2
// POST (falling back to GET where POST is not served), a username and
// password by GET with Basic auth, or nothing.
func (a *Authorizer) fetchToken(ctx context.Context, host string, realm *url.URL, service string, scopes []string) (*token, error) {
	user, secret, err := a.credentials(ctx, host)
	if err != nil {
		return nil, err
	}
	secrets := []string{secret}
	switch {
	case user == "" && secret != "":
		// An identity token is a refresh token.
		tr, err := a.postToken(ctx, realm, service, scopes, secret, secrets)
		if isStatus(err, http.StatusNotFound, http.StatusMethodNotAllowed) {
			tr, err = a.getToken(ctx, realm, service, scopes, user, secret, secrets)
		}
		if err != nil {
			return nil, err
		}
		return a.newToken(tr, scopes), nil

	case user != "" && secret != "":
		rk := refreshKey{realm.String(), service, user}
		a.mu.Lock()
		rt := a.refresh[rk]
		a.mu.Unlock()
		if rt != "" {
			tr, err := a.postToken(ctx, realm, service, scopes, rt, append(secrets, rt))
			switch {
			case err == nil:
				if tr.RefreshToken != "" {
					a.keepRefresh(rk, tr.RefreshToken)
				}
				return a.newToken(tr, scopes), nil
			case isStatus(err, http.StatusNotFound, http.StatusMethodNotAllowed):
			case isStatus(err, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden):
				// Revoked or expired: forget it, the password still works.
				a.mu.Lock()
				if a.refresh[rk] == rt {
					delete(a.refresh, rk)
				}
				a.mu.Unlock()
			default:
				return nil, err
			}
		}
		tr, err := a.getToken(ctx, realm, service, scopes, user, secret, secrets)
		if err != nil {
			return nil, err
		}
		if tr.RefreshToken != "" {
			a.keepRefresh(rk, tr.RefreshToken)
		}
		return a.newToken(tr, scopes), nil

	default:
		tr, err := a.getToken(ctx, realm, service, scopes, "", "", nil)
		if err != nil {
			return nil, err
		}
		return a.newToken(tr, scopes), nil
	}
}

func (a *Authorizer) keepRefresh(rk refreshKey, rt string) {
	a.mu.Lock()
	a.refresh[rk] = rt
	a.mu.Unlock()
}

// tokenResponse is a token server's answer (GET or POST).
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token"`
}

// newToken caches what tr says for 90% of its lifetime, counted from our
// clock: issued_at is the token server's clock and may be off.
func (a *Authorizer) newToken(tr *tokenResponse, scopes []string) *token {
	v := tr.AccessToken
	if v == "" {
		v = tr.Token
	}
	life := defaultExpiry
	switch {
	case tr.ExpiresIn > int64(maxExpiry/time.Second):
		life = maxExpiry
	case tr.ExpiresIn > 0:
		life = time.Duration(tr.ExpiresIn) * time.Second
	}
	return &token{value: v, scopes: scopes, expires: a.now().Add(life - life/10)}
}

// getToken asks realm for a token by GET, with Basic auth when a secret is
// given (and then for a refresh token too).
func (a *Authorizer) getToken(ctx context.Context, realm *url.URL, service string, scopes []string, user, secret string, secrets []string) (*tokenResponse, error) {
	u := *realm
	q := u.Query()
	if service != "" {
		q.Set("service", service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	if secret != "" {
		q.Set("offline_token", "true")
		q.Set("client_id", ClientID)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("token request to %s: %w", realm.Redacted(), err)
	}
	if secret != "" {
		req.SetBasicAuth(user, secret)
	}
	return a.doToken(req, realm, secrets)
}

// postToken trades a refresh token for an access token (OAuth2 form POST).
func (a *Authorizer) postToken(ctx context.Context, realm *url.URL, service string, scopes []string, refreshToken string, secrets []string) (*tokenResponse, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"service":       {service},
		"client_id":     {ClientID},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("token request to %s: %w", realm.Redacted(), err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return a.doToken(req, realm, secrets)
}

// statusError is a token server's refusal.
type statusError struct {
	method, realm string
	status        int
	statusText    string
	text          string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("token server %s refused %s: %s", e.realm, e.method, e.statusText)
	if e.text != "" {
		s += ": " + e.text
	}
	return s
}

func (e *statusError) Unwrap() error { return errdefs.ErrUnauthenticated }

func isStatus(err error, codes ...int) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.status == c {
			return true
		}
	}
	return false
}

// doToken sends a token request and reads the answer. secrets are redacted
// from whatever of the server's text makes it into an error.
func (a *Authorizer) doToken(req *http.Request, realm *url.URL, secrets []string) (*tokenResponse, error) {
	resp, err := a.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which holds no secret: credentials
		// travel in the header or the body.
		return nil, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return nil, fmt.Errorf("read token response from %s: %w", realm.Redacted(), err)
	}
	if len(body) > maxTokenResponse {
		return nil, fmt.Errorf("token response from %s exceeds %d bytes: %w", realm.Redacted(), maxTokenResponse, errdefs.ErrUnauthenticated)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{method: req.Method, realm: realm.Redacted(), status: resp.StatusCode, statusText: resp.Status,
			text: redact(errorText(body), secrets)}
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("token response from %s: invalid JSON: %w", realm.Redacted(), err)
	}
	if tr.AccessToken == "" && tr.Token == "" {
		return nil, fmt.Errorf("token response from %s holds no token: %w", realm.Redacted(), errdefs.ErrUnauthenticated)
	}
	return &tr, nil
}

// errorText finds the message in a token server's error body: the
// registry's {"errors":[{code,message}]}, OAuth2's {error,
// error_description}, or {details}; else the body itself, cut short.
func errorText(body []byte) string {
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Details     string `json:"details"`
	}
	var parts []string
	if json.Unmarshal(body, &e) == nil {
		for _, x := range e.Errors {
			parts = append(parts, strings.TrimSpace(strings.Join(nonEmpty(x.Code, x.Message), ": ")))
		}
		if e.Error != "" || e.Description != "" {
			parts = append(parts, strings.Join(nonEmpty(e.Error, e.Description), ": "))
		}
		if e.Details != "" {
			parts = append(parts, e.Details)
		}
	}
	s := strings.Join(parts, "; ")
	if s == "" {
		s = string(body)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "…"
	}
	return s
}
